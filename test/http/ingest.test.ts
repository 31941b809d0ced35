import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { setUpWorlds } from '../support/app.js';
import { readCsv } from '../support/csv-files.js';
import { heldRunner } from '../support/writer.js';

const worlds = setUpWorlds();
const { world } = worlds;

/** Sends a Buffer as it is (superagent would JSON-encode it). */
const rawBody = (body: Buffer) => body as unknown as string;

const csvPath = () => join(worlds.dir, 'data.csv');
const csvBytes = () => (existsSync(csvPath()) ? readFileSync(csvPath(), 'utf8') : null);

describe('POST /<stream>', () => {
  it('answers 202 queued and the row reaches the file', async () => {
    const { app } = world();
    const res = await request(app).post('/data').send({ t: 21.5, bme: { h: 40 } });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ status: 'queued', rows: 1 });
    await worlds.writer.drain(5_000);
    expect(readCsv(csvPath())).toEqual([['received_at', 't', 'bme.h'], [expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), '21.5', '40']]);
  });

  it('answers 201 stored only once the rows are fsynced, with ?ack=durable', async () => {
    const { app } = world();
    const res = await request(app).post('/data?ack=durable').send([{ a: 1 }, { a: 2 }]);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ status: 'stored', rows: 2 });
    expect(readCsv(csvPath())).toHaveLength(3); // no drain needed: the answer came after the fsync
  });

  it('answers 201 by default with ACK_MODE=durable, and ?ack=queued does not weaken it', async () => {
    const { app } = world({ env: { ACK_MODE: 'durable' } });
    expect((await request(app).post('/data').send({ a: 1 })).status).toBe(201);
    expect((await request(app).post('/data?ack=queued').send({ a: 2 })).status).toBe(201);
    expect(readCsv(csvPath())).toHaveLength(3);
  });

  it('keeps the rows of one request contiguous and in order', async () => {
    const { app } = world();
    await Promise.all([
      request(app).post('/data').send([{ r: 'a1' }, { r: 'a2' }, { r: 'a3' }]),
      request(app).post('/data').send([{ r: 'b1' }, { r: 'b2' }, { r: 'b3' }]),
    ]);
    await worlds.writer.drain(5_000);
    const cells = readCsv(csvPath()).slice(1).map((row) => row[1]).join(' ');
    expect(['a1 a2 a3 b1 b2 b3', 'b1 b2 b3 a1 a2 a3']).toContain(cells);
  });

  it('writes daily files by the UTC day each row was received', async () => {
    let now = Date.UTC(2026, 10, 23, 23, 59, 59, 900);
    const { app } = world({ env: { CSV_ROTATE: 'daily' }, now: () => now });
    await request(app).post('/data?ack=durable').send({ a: 'before' });
    now += 200;
    await request(app).post('/data?ack=durable').send({ a: 'after' });
    expect(readCsv(join(worlds.dir, 'data-2026-11-23.csv'))).toEqual([['received_at', 'a'], ['2026-11-23T23:59:59.900Z', 'before']]);
    expect(readCsv(join(worlds.dir, 'data-2026-11-24.csv'))).toEqual([['received_at', 'a'], ['2026-11-24T00:00:00.100Z', 'after']]);
  });

  it('archives and widens on a new key, logging a WARN', async () => {
    const { app, lines } = world();
    await request(app).post('/data?ack=durable').send({ a: 1 });
    await request(app).post('/data?ack=durable').send({ b: 2 });
    expect(readCsv(csvPath())[0]).toEqual(['received_at', 'a', 'b']);
    expect(lines.find((l) => l.msg === 'csv schema changed')).toMatchObject({ level: 40, file: 'data.csv', added: ['b'] });
  });
});

describe('rejected requests change nothing', () => {
  const cases: Array<{
    what: string;
    env?: Record<string, string>;
    send: (app: ReturnType<typeof world>['app']) => request.Test;
    status: number;
    error: RegExp;
    header?: [string, RegExp];
  }> = [
    { what: 'bad JSON', send: (app) => app && request(app).post('/data').set('content-type', 'application/json').send('{"a":'), status: 400, error: /^the body is not valid JSON: / },
    { what: 'a bad shape', send: (app) => request(app).post('/data').send([1, 2]), status: 400, error: /^item 0 of the batch is a number/ },
    { what: 'a bad key', send: (app) => request(app).post('/data').send({ received_at: 1 }), status: 400, error: /server's own column/ },
    { what: 'an empty body', send: (app) => request(app).post('/data').set('content-type', 'application/json'), status: 400, error: /^the body is empty/ },
    { what: 'invalid UTF-8', send: (app) => request(app).post('/data').set('content-type', 'application/json').serialize(rawBody).send(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), status: 400, error: /^the body is not valid UTF-8$/ },
    { what: 'a bad ack value', send: (app) => request(app).post('/data?ack=later').send({ a: 1 }), status: 400, error: /^ack must be 'durable' or 'queued'/ },
    { what: 'no token', env: { INGEST_TOKEN: 'sekrit' }, send: (app) => request(app).post('/data').send({ a: 1 }), status: 401, error: /Authorization: Bearer/ },
    { what: 'a wrong token', env: { INGEST_TOKEN: 'sekrit' }, send: (app) => request(app).post('/data').set('authorization', 'Bearer nope').send({ a: 1 }), status: 401, error: /^the token is wrong$/ },
    { what: 'an unknown stream', send: (app) => request(app).post('/nosuch').send({ a: 1 }), status: 404, error: /^no stream named 'nosuch'; this server takes data, data2, data3, data4$/ },
    { what: 'an unknown path', send: (app) => request(app).post('/data/x').send({ a: 1 }), status: 404, error: /^no route for POST \/data\/x$/ },
    { what: 'GET on a stream', send: (app) => request(app).get('/data'), status: 405, error: /^method GET is not allowed here; use POST$/, header: ['allow', /^POST$/] },
    { what: 'PUT on a stream', send: (app) => request(app).put('/data').send({ a: 1 }), status: 405, error: /use POST/, header: ['allow', /^POST$/] },
    { what: 'a body over MAX_REQUEST_BYTES', env: { MAX_REQUEST_BYTES: '100' }, send: (app) => request(app).post('/data').send({ a: 'x'.repeat(200) }), status: 413, error: /^the body is larger than MAX_REQUEST_BYTES \(100 bytes\)$/ },
    { what: 'a gzip body that inflates past MAX_REQUEST_BYTES', env: { MAX_REQUEST_BYTES: '1000' }, send: (app) => request(app).post('/data').set('content-type', 'application/json').set('content-encoding', 'gzip').serialize(rawBody).send(gzipSync(JSON.stringify({ a: 'x'.repeat(5000) }))), status: 413, error: /MAX_REQUEST_BYTES/ },
    { what: 'a batch over MAX_BATCH_ROWS', env: { MAX_BATCH_ROWS: '2' }, send: (app) => request(app).post('/data').send([{ a: 1 }, { a: 2 }, { a: 3 }]), status: 413, error: /^the batch has 3 readings, more than MAX_BATCH_ROWS \(2\)$/ },
    { what: 'a gzip body whose compressed length is over MAX_REQUEST_BYTES', env: { MAX_REQUEST_BYTES: '50' }, send: (app) => request(app).post('/data').set('content-type', 'application/json').set('content-encoding', 'gzip').serialize(rawBody).send(Buffer.alloc(80, 1)), status: 413, error: /MAX_REQUEST_BYTES \(50 bytes\)/ },
    { what: 'a batch larger than the whole queue', env: { WRITE_QUEUE_MAXSIZE: '2' }, send: (app) => request(app).post('/data').send([{ a: 1 }, { a: 2 }, { a: 3 }]), status: 413, error: /^the request has 3 readings, more than the write queue holds \(WRITE_QUEUE_MAXSIZE 2\)$/ },
    { what: 'a missing Content-Type', send: (app) => request(app).post('/data').send(Buffer.from('{"a":1}')).unset('content-type'), status: 415, error: /^Content-Type is missing; send application\/json, application\/x-www-form-urlencoded or application\/x-ndjson$/ },
    { what: 'a text Content-Type', send: (app) => request(app).post('/data').set('content-type', 'text/plain').send('{"a":1}'), status: 415, error: /^Content-Type 'text\/plain' is not supported/ },
    { what: 'an unknown Content-Encoding', send: (app) => request(app).post('/data').set('content-type', 'application/json').set('content-encoding', 'zstd-x').send('{"a":1}'), status: 415, error: /Content-Encoding|encoding/ },
  ];

  it.each(cases)('$what → $status', async ({ env, send, status, error, header }) => {
    const { app } = world({ env });
    // A first, accepted row so that "unchanged" means the existing file keeps its bytes.
    const token = env?.INGEST_TOKEN ? { authorization: `Bearer ${env.INGEST_TOKEN}` } : {};
    await request(app).post('/data?ack=durable').set(token).send({ a: 0 }).expect(201);
    const before = csvBytes();
    const res = await send(app);
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.error).toMatch(error);
    expect(typeof res.body.code).toBe('string');
    if (header) expect(res.headers[header[0]]).toMatch(header[1]);
    await worlds.writer.drain(5_000);
    expect(csvBytes()).toBe(before);
  });

  it('429 with Retry-After past RATE_LIMIT_PER_MIN, counting rejected requests', async () => {
    const { app } = world({ env: { RATE_LIMIT_PER_MIN: '3' } });
    await request(app).post('/data').send({ a: 1 }).expect(202);
    await request(app).post('/data').send('nope').set('content-type', 'application/json').expect(400);
    await request(app).post('/data').send({ a: 2 }).expect(202);
    await worlds.writer.drain(5_000);
    const before = csvBytes();
    const res = await request(app).post('/data').send({ a: 3 });
    expect(res.status).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(res.body).toMatchObject({ error: expect.stringMatching(/more than 3 requests a minute/), code: 'RATE_LIMITED' });
    await worlds.writer.drain(5_000);
    expect(csvBytes()).toBe(before);
  });

  it('checks in the SPEC order: 401 before 404, 404 before 405, 415 before 413, 413 before 400', async () => {
    const guarded = world({ env: { INGEST_TOKEN: 't', MAX_REQUEST_BYTES: '10' } }).app;
    expect((await request(guarded).get('/nosuch')).status).toBe(401);
    const { app } = world({ env: { MAX_REQUEST_BYTES: '10' } });
    expect((await request(app).get('/nosuch')).status).toBe(404);
    expect((await request(app).get('/data')).status).toBe(405);
    expect((await request(app).post('/data').set('content-type', 'text/plain').send('x'.repeat(50))).status).toBe(415);
    expect((await request(app).post('/data').set('content-type', 'application/json').send('{'.repeat(50))).status).toBe(413);
  });

  it('accepts the right token, with the scheme in any case', async () => {
    const { app } = world({ env: { INGEST_TOKEN: 'sekrit' } });
    expect((await request(app).post('/data').set('authorization', 'bearer sekrit').send({ a: 1 })).status).toBe(202);
  });

  it('503 with Retry-After when the queue cannot take all of a request, and nothing of it is queued', async () => {
    const runner = heldRunner();
    const { app } = world({ env: { WRITE_QUEUE_MAXSIZE: '3' }, runner });
    expect((await request(app).post('/data').send([{ seq: 1 }, { seq: 2 }])).status).toBe(202);
    const res = await request(app).post('/data').send([{ seq: 3 }, { seq: 4 }]);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.body).toEqual({ error: 'the write queue is full (2 of 3 rows); retry later', code: 'QUEUE_FULL' });
    expect(worlds.writer.length).toBe(2);
    runner.release();
    await worlds.writer.drain(5_000);
    expect(readCsv(csvPath()).slice(1).map((r) => r[1])).toEqual(['1', '2']);
  });

  it('503 with Retry-After when a durable ack cannot be made in time; the rows are still written', async () => {
    const runner = heldRunner();
    const { app } = world({ env: { DURABLE_ACK_TIMEOUT_SEC: '0.2' }, runner });
    const res = await request(app).post('/data?ack=durable').send({ seq: 1 });
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('DURABLE_TIMEOUT');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    runner.release();
    await worlds.writer.drain(5_000);
    expect(readCsv(csvPath())).toHaveLength(2);
  });

  it('503 with Connection: close once shutdown begins', async () => {
    const { app, lifecycle } = world();
    lifecycle.closing = true;
    const res = await request(app).post('/data').send({ a: 1 });
    expect(res.status).toBe(503);
    expect(res.headers.connection).toBe('close');
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.body.code).toBe('SHUTTING_DOWN');
    expect(csvBytes()).toBeNull();
    const health = await request(app).get('/healthz');
    expect(health.status).toBe(503);
    lifecycle.closing = false;
    expect((await request(app).get('/history/json')).body.entries[0]).toMatchObject({ stream: 'data', status: 503 });
  });
});

describe('health', () => {
  it('/healthz, /livez', async () => {
    const { app } = world();
    const health = await request(app).get('/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok', version: '9.9.9', uptime_s: expect.any(Number), timestamp: expect.stringMatching(/Z$/) });
    expect((await request(app).get('/livez')).body).toEqual({ status: 'ok' });
  });

  it('/readyz names each check and turns 503 when the queue is full', async () => {
    const runner = heldRunner();
    const { app } = world({ env: { WRITE_QUEUE_MAXSIZE: '1' }, runner });
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ok',
      checks: {
        writer: { ok: true, alive: true, stalled: false, hung: false },
        data_dir: { ok: true, path: worlds.dir, free_bytes: expect.any(Number), min_free_bytes: 104857600 },
        queue: { ok: true, length: 0, max: 1, bytes: 0, max_bytes: 33554432 },
      },
    });
    await request(app).post('/data').send({ a: 1 }).expect(202);
    const full = await request(app).get('/readyz');
    expect(full.status).toBe(503);
    expect(full.body.status).toBe('error');
    expect(full.body.checks.queue).toEqual({ ok: false, length: 1, max: 1, bytes: 92, max_bytes: 33554432 });
    runner.release();
  });

  it('/readyz turns 503 when DATA_DIR\'s disk has less free space than DISK_MIN_FREE_BYTES, while ingest goes on (SPEC section 12)', async () => {
    let blocks = 10;
    const statfs = () => Promise.resolve({ bavail: blocks, bsize: 4096 });
    const { app } = world({ env: { DISK_MIN_FREE_BYTES: '65536' }, statfs });
    const low = await request(app).get('/readyz');
    expect(low.status).toBe(503);
    expect(low.body.checks.data_dir).toEqual({ ok: false, path: worlds.dir, free_bytes: 40960, min_free_bytes: 65536 });
    await request(app).post('/data?ack=durable').send({ a: 1 }).expect(201);
    blocks = 16;
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks.data_dir).toMatchObject({ ok: true, free_bytes: 65536 });
  });

  it('other methods on the fixed paths get 405 with Allow: GET, HEAD', async () => {
    const { app } = world();
    for (const path of ['/healthz', '/livez', '/readyz', '/metrics', '/history', '/history/json']) {
      const res = await request(app).post(path).send({ a: 1 });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
      expect(res.body.code).toBe('METHOD_NOT_ALLOWED');
    }
    expect((await request(app).head('/healthz')).status).toBe(200);
  });

  it('unknown paths get a JSON 404', async () => {
    const res = await request(world().app).get('/a/b/c');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'no route for GET /a/b/c', code: 'NOT_FOUND' });
  });

  it('logs one line per request with method, path, status, duration, stream and rows', async () => {
    const { app, lines } = world();
    await request(app).post('/data').send([{ a: 1 }, { a: 2 }]);
    expect(lines.find((l) => l.msg === 'request')).toMatchObject({ method: 'POST', path: '/data', status: 202, ms: expect.any(Number), stream: 'data', rows: 2 });
  });
});
