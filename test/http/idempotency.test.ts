import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createIdempotencyStore } from '../../src/ingest/idempotency.js';
import { type BatchRunner, createInlineRunner } from '../../src/writer/runners.js';
import { setUpWorlds } from '../support/app.js';
import { readCsv } from '../support/csv-files.js';
import { heldRunner } from '../support/writer.js';

const worlds = setUpWorlds();
const { world } = worlds;

const rows = (name = 'data.csv') => readCsv(join(worlds.dir, name)).slice(1);

describe('Idempotency-Key', () => {
  it('five concurrent retries of one key store one row; the other four are replays', async () => {
    const { app } = world();
    const send = () => request(app).post('/data?ack=durable').set('idempotency-key', 'k-1').send({ seq: 1 });
    const answers = await Promise.all([send(), send(), send(), send(), send()]);
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201]);
    expect(answers.map((a) => a.body)).toEqual(Array(5).fill({ status: 'stored', rows: 1 }));
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(4);
    expect(rows()).toHaveLength(1);

    const metrics = (await request(app).get('/metrics')).text;
    expect(metrics).toContain('ingest_duplicates_total{stream="data"} 4');
    expect(metrics).toContain('ingest_rows_total{stream="data"} 1');
    const history = (await request(app).get('/history/json')).body.entries;
    expect(history.filter((e: { replayed?: boolean }) => e.replayed === true)).toHaveLength(4);
  });

  it('is per stream: the same key on another stream is not a duplicate; X-Request-Id works too', async () => {
    const { app } = world();
    await request(app).post('/data').set('x-request-id', 'same').send({ a: 1 }).expect(202);
    const other = await request(app).post('/data2').set('x-request-id', 'same').send({ a: 2 });
    expect(other.status).toBe(202);
    expect(other.headers['idempotent-replayed']).toBeUndefined();
    const again = await request(app).post('/data').set('x-request-id', 'same').send({ a: 3 });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual({ status: 'queued', rows: 1 });
    await worlds.writer.drain(5_000);
    expect(rows().map((r) => r[1])).toEqual(['1']);
    expect(rows('data2.csv').map((r) => r[1])).toEqual(['2']);
  });

  it('the key alone decides: a different body with a used key is replayed, not stored; a refused first try does not use the key', async () => {
    const { app } = world();
    await request(app).post('/data').set('idempotency-key', 'k').set('content-type', 'application/json').send('{bad').expect(400);
    await request(app).post('/data').set('idempotency-key', 'k').send({ a: 1 }).expect(202);
    const replay = await request(app).post('/data').set('idempotency-key', 'k').send({ a: 'different' });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    await worlds.writer.drain(5_000);
    expect(rows().map((r) => r[1])).toEqual(['1']);
  });

  it('works for line protocol: the replay is a 204 too', async () => {
    const { app } = world();
    await request(app).post('/write?db=data').set('idempotency-key', 'lp').send('m v=1').expect(204);
    const replay = await request(app).post('/write?db=data').set('idempotency-key', 'lp').send('m v=1');
    expect(replay.status).toBe(204);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    await worlds.writer.drain(5_000);
    expect(rows()).toHaveLength(1);
  });

  it('after a durable ack timed out, a retry with the key waits for the same rows instead of storing them again', async () => {
    const runner = heldRunner();
    const { app } = world({ env: { DURABLE_ACK_TIMEOUT_SEC: '0.2' }, runner });
    const first = await request(app).post('/data?ack=durable').set('idempotency-key', 'slow').send({ a: 1 });
    expect(first.status).toBe(503);
    const retry = request(app).post('/data?ack=durable').set('idempotency-key', 'slow').send({ a: 1 });
    runner.release();
    const answer = await retry;
    expect(answer.status).toBe(201);
    expect(answer.headers['idempotent-replayed']).toBe('true');
    expect(rows()).toHaveLength(1);
  });
});

describe('a key longer than 128 characters', () => {
  const LONG = 'k'.repeat(129);
  const bytes = () => readFileSync(join(worlds.dir, 'data.csv'), 'utf8');

  it.each(['Idempotency-Key', 'X-Request-Id'])('in %s is a 400 in words: nothing queued, nothing remembered, the CSV untouched', async (header) => {
    const w = world();
    await request(w.app).post('/data?ack=durable').send({ a: 0 }).expect(201);
    const before = bytes();
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await request(w.app).post('/data?ack=durable').set(header, LONG).send({ a: 1 });
      expect(res.status).toBe(400);
      expect(res.headers['idempotent-replayed']).toBeUndefined();
      expect(res.body).toEqual({ error: `${header} is 129 characters long; at most 128 are taken`, code: 'BAD_IDEMPOTENCY_KEY' });
    }
    const lp = await request(w.app).post('/write?db=data').set(header, LONG).send('m v=1');
    expect(lp.status).toBe(400);
    expect(lp.body.error).toBe(`${header} is 129 characters long; at most 128 are taken`);
    expect(w.writer.length).toBe(0);
    expect(w.idempotency.size).toBe(0);
    await w.writer.drain(5_000);
    expect(bytes()).toBe(before);
    expect((await request(w.app).get('/metrics')).text).toContain('ingest_rejected_total{stream="data",reason="bad_idempotency_key"} 3');
  });

  it('of exactly 128 is taken and replayed', async () => {
    const { app } = world();
    const key = 'k'.repeat(128);
    await request(app).post('/data').set('idempotency-key', key).send({ a: 1 }).expect(202);
    const replay = await request(app).post('/data').set('idempotency-key', key).send({ a: 2 });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    await worlds.writer.drain(5_000);
    expect(rows().map((r) => r[1])).toEqual(['1']);
  });

  it('is a body-level 400 in the SPEC order: after 415 and 413, with the body\'s own 400s, before the queue\'s 503', async () => {
    const runner = heldRunner();
    const w = world({ env: { WRITE_QUEUE_MAXSIZE: '1', MAX_REQUEST_BYTES: '1000' }, runner });
    const send = (body: string, type = 'application/json') => request(w.app).post('/data').set('idempotency-key', LONG).set('content-type', type).send(body);
    expect((await send('{"a":1}', 'text/plain')).status).toBe(415);
    expect((await send(JSON.stringify({ a: 'x'.repeat(2000) }))).status).toBe(413);
    const badJson = await send('{bad');
    expect(badJson.status).toBe(400);
    expect(badJson.body.code).not.toBe('BAD_IDEMPOTENCY_KEY');
    // Fill the queue until a plain request gets the 503; the long key still gets its 400.
    while ((await request(w.app).post('/data').send({ fill: 1 })).status !== 503);
    const refused = await send('{"a":1}');
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe('BAD_IDEMPOTENCY_KEY');
    runner.release();
    await w.writer.drain(5_000);
    expect(rows().map((r) => r[1])).not.toContain('');
    expect(readCsv(join(worlds.dir, 'data.csv'))[0]).toEqual(['received_at', 'fill']);
  });
});

describe('the idempotency store', () => {
  it('refuses to claim a key longer than 128 characters: its memory bound rests on that', () => {
    const store = createIdempotencyStore({ windowSec: 10, maxKeys: 2, now: () => 0 });
    expect(() => store.claim('s', 'k'.repeat(129))).toThrow(RangeError);
    expect(store.claim('s', 'k'.repeat(128)).first).toBe(true);
  });


  it('forgets keys after the window and the oldest past IDEMPOTENCY_MAX_KEYS', () => {
    let now = 0;
    const store = createIdempotencyStore({ windowSec: 10, maxKeys: 2, now: () => now });
    const accept = (key: string) => {
      const claim = store.claim('s', key);
      if (!claim.first) throw new Error(`${key} was not new`);
      claim.claim.accepted(1, Promise.resolve());
      claim.claim.answered({ status: 202, body: {} });
    };
    accept('a');
    expect(store.claim('s', 'a').first).toBe(false);
    expect(store.claim('t', 'a').first).toBe(true); // another stream: its own key
    now = 10_001;
    const fresh = store.claim('s', 'a');
    expect(fresh.first).toBe(true); // expired: a new request
    if (fresh.first) fresh.claim.answered({ status: 400, body: {} }); // refused: the key is released
    accept('b');
    accept('c');
    accept('d');
    expect(store.size).toBe(2);
    expect(store.claim('s', 'd').first).toBe(false);
    expect(store.claim('s', 'c').first).toBe(false);
    expect(store.claim('s', 'b').first).toBe(true); // the oldest, forgotten
  });
});

describe('Retry-After', () => {
  it('grows with the backlog: queue depth over the measured drain rate', async () => {
    // A slow disk (each commit takes 50 ms) measures the drain rate; then the writer is held.
    const inline = createInlineRunner();
    let commitDelayMs = 50;
    let gate: Promise<void> | undefined = undefined;
    let open = () => {};
    const runner: BatchRunner = {
      ...inline,
      run: async (task) => {
        await new Promise((resolve) => setTimeout(resolve, commitDelayMs));
        await gate;
        return inline.run(task);
      },
    };
    const { app } = world({ env: { WRITE_QUEUE_MAXSIZE: '1000', MAX_BATCH_ROWS: '1000' }, runner });
    for (let i = 0; i < 5; i++) await request(app).post('/data?ack=durable').send({ warm: i }).expect(201);
    gate = new Promise((resolve) => (open = resolve));
    commitDelayMs = 0;

    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));
    const retryAfterAt = async (depth: number) => {
      while (worlds.writer.length < depth) await request(app).post('/data').send(batch(Math.min(100, depth - worlds.writer.length))).expect(202);
      const refused = await request(app).post('/data').send(batch(1000 - depth + 1)); // one row more than fits
      expect(refused.status).toBe(503);
      return Number(refused.headers['retry-after']);
    };
    const shallow = await retryAfterAt(20);
    const middle = await retryAfterAt(300);
    const deep = await retryAfterAt(900);
    expect(shallow).toBeGreaterThanOrEqual(1);
    expect(middle).toBeGreaterThan(shallow);
    expect(deep).toBeGreaterThan(middle);
    expect(deep).toBeLessThanOrEqual(60);
    open();
    expect(await worlds.writer.drain(10_000)).toBe(0);
  });
});
