import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { setUpWorlds } from '../support/app.js';
import { readCsv } from '../support/csv-files.js';

const worlds = setUpWorlds();
const { world } = worlds;

const rawBody = (body: Buffer | string) => body as unknown as string;
const csv = (name = 'data.csv') => readCsv(join(worlds.dir, name));
const bytes = (name = 'data.csv') => (existsSync(join(worlds.dir, name)) ? readFileSync(join(worlds.dir, name), 'utf8') : null);
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('form bodies', () => {
  it('take one reading, each field a column', async () => {
    const { app } = world();
    const res = await request(app).post('/data?ack=durable').type('form').send('temp=21.5&door=open%2Fclosed&bme.h=40');
    expect(res.status).toBe(201);
    expect(csv()).toEqual([['received_at', 'temp', 'door', 'bme.h'], [expect.stringMatching(ISO_MS), '21.5', 'open/closed', '40']]);
  });

  it('takes __proto__ and constructor as ordinary fields', async () => {
    const { app } = world();
    await request(app).post('/data?ack=durable').type('form').send('temp=21&__proto__=evil&constructor=c').expect(201);
    expect(csv()[0]).toEqual(['received_at', 'temp', '__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).evil).toBeUndefined();
  });

  it.each([
    ['a repeated field', 'a=1&a=2', /^field 'a' is given twice$/],
    ['an empty field name', '=1', /^a key is empty$/],
    ['received_at', 'received_at=x', /server's own column/],
    ['no fields', '&', /^the form has no fields$/],
  ])('refuse %s with a 400 naming the field, storing nothing', async (_what, body, error) => {
    const { app } = world();
    const res = await request(app).post('/data').type('form').send(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(error);
    await worlds.writer.drain(5_000);
    expect(bytes()).toBeNull();
  });
});

describe('integer-like keys (a JavaScript object would list them first)', () => {
  it('keep the order they were sent in, in the header and in the row, for JSON and NDJSON', async () => {
    const { app } = world();
    await request(app).post('/data?ack=durable').send('{"temp":21.5,"1":"ch1","2":"ch2","arr":[{"z":1,"3":2}]}').type('json').expect(201);
    await request(app).post('/data?ack=durable').set('content-type', 'application/x-ndjson').send('{"temp":22,"2":"b","1":"a"}\n').expect(201);
    expect(csv()).toEqual([
      ['received_at', 'temp', '1', '2', 'arr'],
      [expect.stringMatching(ISO_MS), '21.5', 'ch1', 'ch2', '[{"z":1,"3":2}]'],
      [expect.stringMatching(ISO_MS), '22', 'a', 'b', ''],
    ]);
  });
});

describe('NDJSON bodies', () => {
  it('take one reading a line, blank lines skipped', async () => {
    const { app } = world();
    const res = await request(app).post('/data?ack=durable').set('content-type', 'application/x-ndjson').send('{"a":1}\n\n{"a":2,"b":{"c":3}}\n');
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ status: 'stored', rows: 2 });
    expect(csv()).toEqual([
      ['received_at', 'a', 'b.c'],
      [expect.stringMatching(ISO_MS), '1', ''],
      [expect.stringMatching(ISO_MS), '2', '3'],
    ]);
  });

  it.each([
    ['bad JSON on line 2', '{"a":1}\n{"a":\n', /^line 2: not valid JSON: /],
    ['an array on line 3', '{"a":1}\n{"a":2}\n[1]\n', /^line 3: expected a JSON object$/],
    ['a bad key on line 1', '{"received_at":1}\n', /^line 1: the key 'received_at' is the server's own column$/],
  ])('refuse %s: all or nothing, the 400 names the line', async (_what, body, error) => {
    const { app } = world();
    const res = await request(app).post('/data').set('content-type', 'application/x-ndjson').send(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(error);
    await worlds.writer.drain(5_000);
    expect(bytes()).toBeNull();
  });

  it('counts lines against MAX_BATCH_ROWS, before looking at them (413 before 400)', async () => {
    const { app } = world({ env: { MAX_BATCH_ROWS: '2' } });
    const res = await request(app).post('/data').set('content-type', 'application/x-ndjson').send('{bad\n{"a":2}\n{"a":3}\n');
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('the body has 3 readings, more than MAX_BATCH_ROWS (2)');
  });
});

describe('gzip', () => {
  it('is taken for JSON, form and NDJSON bodies', async () => {
    const { app } = world();
    const gz = (text: string) => gzipSync(Buffer.from(text));
    await request(app).post('/data?ack=durable').set('content-type', 'application/json').set('content-encoding', 'gzip').serialize(rawBody).send(gz('{"a":"json"}')).expect(201);
    await request(app).post('/data?ack=durable').set('content-type', 'application/x-www-form-urlencoded').set('content-encoding', 'gzip').serialize(rawBody).send(gz('a=form')).expect(201);
    await request(app).post('/data?ack=durable').set('content-type', 'application/x-ndjson').set('content-encoding', 'gzip').serialize(rawBody).send(gz('{"a":"nd1"}\n{"a":"nd2"}')).expect(201);
    expect(csv().slice(1).map((r) => r[1])).toEqual(['json', 'form', 'nd1', 'nd2']);
  });

  it('turns a 1 KB body that inflates past MAX_REQUEST_BYTES into a 413, keeping memory flat', async () => {
    const { app } = world({ env: { MAX_REQUEST_BYTES: '1048576' } });
    const send = (body: Buffer) =>
      request(app).post('/data').set('content-type', 'application/json').set('content-encoding', 'gzip').serialize(rawBody).send(body);
    const oneKb = gzipSync(Buffer.alloc(1_100_000, 0x20)); // 1.1 MB of spaces
    expect(oneKb.length).toBeLessThan(1200);
    const res = await send(oneKb);
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('the body is larger than MAX_REQUEST_BYTES (1048576 bytes)');

    // Ten 64 MB bombs (64 kB each) would add hundreds of MB if a body were inflated whole.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 10; i++) expect((await send(bomb)).status).toBe(413);
    expect(process.memoryUsage().rss - before).toBeLessThan(48 * 1024 * 1024);
    expect(bytes()).toBeNull();
  });
});

describe('compressed size', () => {
  it('counts the bytes as sent against MAX_REQUEST_BYTES, even chunked and tiny once inflated', async () => {
    const { app } = world({ env: { MAX_REQUEST_BYTES: '10000' } });
    const server = createServer(app).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      // 2,000 empty gzip members (about 40 kB on the wire) around one small reading.
      const body = Buffer.concat([gzipSync('{"a":1}'), ...Array.from({ length: 2000 }, () => gzipSync(''))]);
      expect(body.length).toBeGreaterThan(10_000);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: (server.address() as { port: number }).port, path: '/data', method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        for (let offset = 0; offset < body.length; offset += 1000) req.write(body.subarray(offset, offset + 1000)); // chunked: no Content-Length
        req.end();
      });
      expect(status).toBe(413);
      expect(bytes()).toBeNull();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

/**
 * A sample of what Telegraf sends: the "Example Output" of Telegraf's cpu input plugin
 * (influxdata/telegraf, plugins/inputs/cpu/README.md), shortened to a few fields.
 */
const TELEGRAF_CPU = [
  'cpu,cpu=cpu0,host=loaner time_active=202224.15999999992,time_guest=30250.35,time_guest_nice=0,time_idle=1527035.04 1568760922000000000',
  'cpu,cpu=cpu0,host=loaner usage_active=31.249999981810106,usage_guest=2.083333333080696,usage_guest_nice=0,usage_idle=68.7500000181899 1568760922000000000',
].join('\n');

describe('InfluxDB line protocol', () => {
  it('v2: /api/v2/write?bucket= takes what Telegraf sends, gzipped, and answers 204', async () => {
    const { app } = world();
    const res = await request(app)
      .post('/api/v2/write?org=home&bucket=data&precision=ns')
      .set('content-type', 'text/plain; charset=utf-8')
      .set('content-encoding', 'gzip')
      .serialize(rawBody)
      .send(gzipSync(TELEGRAF_CPU));
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    await worlds.writer.drain(5_000);
    const [header, first, second] = csv();
    expect(header).toEqual([
      'received_at', 'measurement', 'cpu', 'host', 'time_active', 'time_guest', 'time_guest_nice', 'time_idle', 'time',
      'usage_active', 'usage_guest', 'usage_guest_nice', 'usage_idle',
    ]);
    expect(first).toEqual([expect.stringMatching(ISO_MS), 'cpu', 'cpu0', 'loaner', '202224.15999999992', '30250.35', '0', '1527035.04', '2019-09-17T22:55:22.000000000Z', '', '', '', '']);
    expect(second?.slice(8)).toEqual(['2019-09-17T22:55:22.000000000Z', '31.249999981810106', '2.083333333080696', '0', '68.7500000181899']);
  });

  it('v1: /write?db= with each precision keeps the precision sent', async () => {
    const { app } = world();
    for (const [precision, stamp] of [
      ['s', '1700000000'],
      ['ms', '1700000000123'],
      ['us', '1700000000123456'],
      ['ns', '1700000000123456789'],
    ] as const) {
      await request(app).post(`/write?db=data&precision=${precision}`).send(`m,p=${precision} v=1 ${stamp}`).expect(204);
    }
    await worlds.writer.drain(5_000);
    expect(csv().slice(1).map((r) => [r[2], r[4]])).toEqual([
      ['s', '2023-11-14T22:13:20Z'],
      ['ms', '2023-11-14T22:13:20.123Z'],
      ['us', '2023-11-14T22:13:20.123456Z'],
      ['ns', '2023-11-14T22:13:20.123456789Z'],
    ]);
  });

  it('maps field types, escapes and a missing timestamp', async () => {
    let now = Date.UTC(2026, 10, 23, 12, 0, 0, 5);
    const { app } = world({ now: () => now });
    const body = [
      '# a comment line',
      'weather\\ station,loc=us\\,west,room=a\\=b temp=82i,count=7u,ok=t,bad=FALSE,note="say \\"hi\\", ok",f=-1.5e3',
      '',
    ].join('\n');
    await request(app).post('/api/v2/write?bucket=data').send(body).expect(204);
    now += 1;
    await worlds.writer.drain(5_000);
    expect(csv()).toEqual([
      ['received_at', 'measurement', 'loc', 'room', 'temp', 'count', 'ok', 'bad', 'note', 'f', 'time'],
      ['2026-11-23T12:00:00.005Z', 'weather station', 'us,west', 'a=b', '82', '7', 'true', 'false', 'say "hi", ok', '-1500', '2026-11-23T12:00:00.005Z'],
    ]);
  });

  it.each([
    ['a field with no value', 'm v=', "field 'v' has an invalid value ''"],
    ['no fields', 'm,t=1', 'expected a space and then fields'],
    ['a bad field value', 'm v=abc', "field 'v' has an invalid value 'abc'"],
    ['an unclosed string', 'm v="abc', "field 'v': the string is not closed"],
    ['a bad timestamp', 'm v=1 12ab', "the timestamp '12ab' is not a whole number"],
    ['a tag named time', 'm,time=x v=1', "a tag may not be named 'time': that column is the server's"],
    ['a field named measurement', 'm measurement=1', "a field may not be named 'measurement': that column is the server's"],
    ['a field named received_at', 'm received_at=1', "the key 'received_at' is the server's own column"],
    ['a tag and field with one name', 'm,a=1 a=2', "keys 'a' and 'a' land on the same column"],
    ['an empty tag value', 'm,a= v=1', "tag 'a' has an empty value"],
  ])('refuses %s: all lines or none, the 400 names the first bad line', async (_what, badLine, error) => {
    const { app } = world();
    const res = await request(app).post('/api/v2/write?bucket=data').send(`ok v=1\n${badLine}\nok v=2`);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe(`line 2: ${error}`);
    await worlds.writer.drain(5_000);
    expect(bytes()).toBeNull();
  });

  const SIGNED = 'signed 64-bit integer range (-9223372036854775808 to 9223372036854775807)';
  const UNSIGNED = 'unsigned 64-bit integer range (0 to 18446744073709551615)';
  it.each([
    ['one past the largest int64', 'm v=9223372036854775808i', `field 'v': 9223372036854775808i is outside the ${SIGNED}`],
    ['one below the smallest int64', 'm v=-9223372036854775809i', `field 'v': -9223372036854775809i is outside the ${SIGNED}`],
    ['one past the largest uint64', 'm v=18446744073709551616u', `field 'v': 18446744073709551616u is outside the ${UNSIGNED}`],
    ['a negative unsigned', 'm v=-1u', "field 'v' has an invalid value '-1u'"],
    // Never handed to BigInt: converting it took 0.6 s of main-thread CPU. The message shows its start only.
    ['a 1 MB integer', `m v=${'9'.repeat(1_000_000)}i`, `field 'v': ${'9'.repeat(40)}… is outside the ${SIGNED}`],
    ['a 1 MB unsigned after leading zeros', `m v=${'0'.repeat(500_000)}${'1'.repeat(500_000)}u`, `field 'v': ${'0'.repeat(40)}… is outside the ${UNSIGNED}`],
    // A 400 that echoed a 1 MB value would cost as much again: every value and name is cut in messages.
    ['a 1 MB timestamp', `m v=1i ${'7'.repeat(1_000_000)}`, `the timestamp '${'7'.repeat(40)}…' is not a whole number`],
    ['a 1 MB tag name with no value', `m,${'k'.repeat(1_000_000)} v=1i`, `tag '${'k'.repeat(40)}…' has no '='`],
  ])('refuses %s as InfluxDB does: a 400 naming the line, and the CSV untouched', async (_what, badLine, error) => {
    const { app } = world();
    await request(app).post('/write?db=data&precision=s').send('ok v=0i 1700000000').expect(204);
    await worlds.writer.drain(5_000);
    const before = bytes();
    const res = await request(app).post('/write?db=data').set('content-type', 'text/plain').send(`ok v=1i\n${badLine}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: `line 2: ${error}`, code: 'BAD_LINE_PROTOCOL' });
    await worlds.writer.drain(5_000);
    expect(bytes()).toBe(before);
  });

  it('takes the 64-bit integers at both ends of their ranges, and leading zeros, exactly', async () => {
    const { app } = world();
    const body = `m a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u,d=${'0'.repeat(100_000)}42i,e=-0i,f=0u`;
    await request(app).post('/write?db=data').set('content-type', 'text/plain').send(body).expect(204);
    await worlds.writer.drain(5_000);
    expect(csv()[1]?.slice(2, 8)).toEqual(['9223372036854775807', '-9223372036854775808', '18446744073709551615', '42', '0', '0']);
  });

  it('answers 404 for an unknown bucket, 400 for a bad precision, 413 past MAX_BATCH_ROWS', async () => {
    const { app } = world({ env: { MAX_BATCH_ROWS: '2' } });
    expect((await request(app).post('/api/v2/write?bucket=nope').send('m v=1')).status).toBe(404);
    expect((await request(app).post('/write').send('m v=1')).status).toBe(404);
    expect((await request(app).post('/write?db=data&precision=h').send('m v=1')).body.error).toMatch(/^precision must be ns, us, ms or s/);
    const tooMany = await request(app).post('/write?db=data').send('m v=bad\nm v=2\nm v=3');
    expect(tooMany.status).toBe(413); // size before content
    expect(tooMany.body.error).toBe('the body has 3 lines, more than MAX_BATCH_ROWS (2)');
    expect((await request(app).get('/write?db=data')).status).toBe(405);
  });

  it('takes the ingest token as Bearer or Token', async () => {
    const { app } = world({ env: { INGEST_TOKEN: 'tok' } });
    expect((await request(app).post('/api/v2/write?bucket=data').send('m v=1')).status).toBe(401);
    expect((await request(app).post('/api/v2/write?bucket=data').set('authorization', 'Token tok').send('m v=1')).status).toBe(204);
    expect((await request(app).post('/write?db=data').set('authorization', 'Bearer tok').send('m v=1')).status).toBe(204);
    expect((await request(app).post('/data').set('authorization', 'Token tok').send({ a: 1 })).status).toBe(401);
  });

  it('is recorded in history and metrics under its fixed route', async () => {
    const { app } = world();
    await request(app).post('/write?db=data2').send('m v=1');
    const history = (await request(app).get('/history/json')).body.entries;
    expect(history[0]).toMatchObject({ stream: 'data2', status: 204, rows: 1, payload: 'm v=1' });
    const text = (await request(app).get('/metrics')).text;
    expect(text).toContain('http_requests_total{method="POST",route="/write",status="204"} 1');
    expect(text).toContain('ingest_rows_total{stream="data2"} 1');
  });
});
