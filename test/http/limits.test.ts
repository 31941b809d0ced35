/**
 * SPEC section 11 at the HTTP edge: each limit answers its status with a
 * JSON error in words, and a refused request changes no file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { setUpWorlds } from '../support/app.js';
import { readCsv } from '../support/csv-files.js';
import { waitFor } from '../support/wait.js';
import { heldRunner } from '../support/writer.js';

const worlds = setUpWorlds();
const { world } = worlds;
const csvPath = () => join(worlds.dir, 'data.csv');
const rawJson = (app: ReturnType<typeof world>['app'], text: string) =>
  request(app)
    .post('/data?ack=durable')
    .set('content-type', 'application/json')
    .serialize((body: unknown) => body as string)
    .send(text);
const columns = (prefix: string, count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${i}`, i]));

describe('SPEC section 11 limits over HTTP', () => {
  it('refuses a lone surrogate in a key or a value with a 400 naming the key; the file is untouched', async () => {
    const { app } = world();
    await request(app).post('/data?ack=durable').send({ t: 1 }).expect(201);
    const before = readFileSync(csvPath());
    for (const text of ['{"\\ud800":1}', '{"t":"\\udfff"}', '[{"t":1},{"x":{"\\ud83d":2}}]']) {
      const res = await rawJson(app, text);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/is not well-formed Unicode \(a lone surrogate\)/);
    }
    expect(readFileSync(csvPath())).toEqual(before);
    // A surrogate pair is text as sent, and is read back the same: the next request with it does not archive.
    await rawJson(app, '{"\\ud83d\\ude00":"\\ud83c\\udf21"}').expect(201);
    await rawJson(app, '{"\\ud83d\\ude00":"2"}').expect(201);
    expect(readCsv(csvPath())[0]).toEqual(['received_at', 't', '😀']);
    expect(readCsv(csvPath()).slice(1).map((r) => r[2])).toEqual(['🌡', '2']);
  });

  it('refuses more than MAX_COLUMNS columns over a batch or NDJSON body with a 400; the file is untouched', async () => {
    const { app } = world({ env: { MAX_COLUMNS: '10' } });
    await request(app).post('/data?ack=durable').send({ a: 1 }).expect(201);
    const before = readFileSync(csvPath());
    const batch = await request(app).post('/data').send([columns('a', 6), columns('b', 6)]);
    expect(batch.status).toBe(400);
    expect(batch.body).toMatchObject({ error: expect.stringMatching(/more than 10 columns \(MAX_COLUMNS\)/) });
    const ndjson = await request(app)
      .post('/data')
      .set('content-type', 'application/x-ndjson')
      .send(`${JSON.stringify(columns('a', 6))}\n${JSON.stringify(columns('c', 6))}\n`);
    expect(ndjson.status).toBe(400);
    const lines = await request(app).post('/write?db=data').send('m f1=1,f2=2,f3=3,f4=4,f5=5\nm g1=1,g2=2,g3=3,g4=4,g5=5\n');
    expect(lines.status).toBe(400);
    expect(readFileSync(csvPath())).toEqual(before);
    await request(app).post('/data').send([columns('a', 5), columns('b', 5)]).expect(202);
  });

  it('answers 503 with Retry-After once the queue holds WRITE_QUEUE_MAX_BYTES, and 413 for a request that never fits', async () => {
    const runner = heldRunner();
    const { app } = world({ runner, env: { WRITE_QUEUE_MAX_BYTES: '100000', WRITE_QUEUE_MAXSIZE: '5000' } });
    const reading = { text: 'x'.repeat(30_000) };
    for (let i = 0; i < 3; i++) await request(app).post('/data').send(reading).expect(202);
    const full = await request(app).post('/data').send(reading);
    expect(full.status).toBe(503);
    expect(full.headers['retry-after']).toMatch(/^\d+$/);
    expect(full.body.error).toMatch(/the write queue is full \(\d+ of 100000 bytes, WRITE_QUEUE_MAX_BYTES\)/);
    const never = await request(app).post('/data').send({ text: 'y'.repeat(200_000) });
    expect(never.status).toBe(413);
    expect(never.body.error).toMatch(/more than the write queue holds \(WRITE_QUEUE_MAX_BYTES 100000\)/);
    const ready = await request(app).get('/readyz');
    expect(ready.body.checks.queue).toMatchObject({ bytes: expect.any(Number), max_bytes: 100000 });
    expect(ready.body.checks.queue.bytes).toBeGreaterThan(90_000);
    runner.release();
    await waitFor(() => worlds.writer.length === 0, 'the queue to drain');
    expect(readCsv(csvPath())).toHaveLength(4);
  });

  it("shows a hung write in /readyz's writer check, and takes it back once the write returns", async () => {
    const runner = heldRunner();
    const { app, writer } = world({ runner, env: { WRITE_TIMEOUT_SEC: '0.2' } });
    await request(app).post('/data').send({ t: 1 }).expect(202);
    expect((await request(app).get('/readyz').expect(200)).body.checks.writer).toMatchObject({ ok: true, hung: false });
    await waitFor(() => writer.hung, 'the write to count as hung');
    const hung = await request(app).get('/readyz').expect(503);
    expect(hung.body.checks.writer).toMatchObject({ ok: false, hung: true, stalled: true });
    runner.release();
    await waitFor(() => writer.length === 0, 'the write to return');
    expect((await request(app).get('/readyz').expect(200)).body.checks.writer).toMatchObject({ ok: true, hung: false });
  });
});

describe('form bodies (SPEC section 11: text kept as sent)', () => {
  it('refuses a percent-encoding that is not UTF-8 (a lone surrogate, a stray byte) with a 400; decodes the rest as URLSearchParams does', async () => {
    const { app } = world();
    const form = (body: string) => request(app).post('/data?ack=durable').set('content-type', 'application/x-www-form-urlencoded').send(body);
    await form('a=1').expect(201);
    const before = readFileSync(csvPath());
    for (const body of ['a=%ED%A0%80', 'b=%FF', '%FE=1']) {
      const res = await form(body);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/is not percent-encoded UTF-8/);
    }
    expect(readFileSync(csvPath())).toEqual(before);
    await form('a=21.5+C&b=%C2%B0%20x&c=100%').expect(201);
    expect(readCsv(csvPath()).at(-1)?.slice(1)).toEqual(['21.5 C', '° x', '100%']);
  });
});
