/**
 * Hostile input: whatever arrives, the server answers 4xx or 2xx (never
 * 500), keeps running, writes only well-formed rows, and stays responsive
 * while a slow body trickles in.
 */
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { setUpWorlds } from '../support/app.js';
import { readCsv } from '../support/csv-files.js';

const worlds = setUpWorlds();
const { world } = worlds;

const rawBody = (body: Buffer | string) => body as unknown as string;
const post = (app: ReturnType<typeof world>['app'], body: Buffer | string) =>
  request(app).post('/data').set('content-type', 'application/json').serialize(rawBody).send(body);

/** Every CSV file in the data dir parses strictly: one header, every row as wide as it. */
function expectWellFormedFiles(): number {
  let rows = 0;
  for (const name of readdirSync(worlds.dir).filter((n) => n.endsWith('.csv'))) {
    const records = readCsv(join(worlds.dir, name)); // csv-parse throws on a bad quote or a ragged row
    expect(records[0]?.[0]).toBe('received_at');
    for (const record of records.slice(1)) expect(record[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    rows += records.length - 1;
  }
  return rows;
}

describe('hostile input', () => {
  it('answers random bytes with 4xx or 2xx, never 500, and writes only well-formed rows', async () => {
    const { app } = world();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        const res = await post(app, Buffer.from(bytes));
        expect([202, 400, 413]).toContain(res.status);
        expect(typeof res.body.error === 'string' || res.status === 202).toBe(true);
        if (res.status === 202) accepted += res.body.rows as number;
      }),
      { numRuns: 300 },
    );
    await worlds.writer.drain(10_000);
    expect(expectWellFormedFiles()).toBe(accepted);
  });

  it('answers random JSON with 202, 400 or 413, and stores exactly the accepted rows', async () => {
    const { app } = world({ env: { MAX_BATCH_ROWS: '20' } });
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.array(fc.dictionary(fc.string(), fc.jsonValue()), { maxLength: 25 })), async (value) => {
        const res = await post(app, JSON.stringify(value));
        expect([202, 400, 413]).toContain(res.status);
        if (res.status === 202) accepted += res.body.rows as number;
      }),
      { numRuns: 400 },
    );
    await worlds.writer.drain(10_000);
    expect(expectWellFormedFiles()).toBe(accepted);
  });

  it.each([
    ['10,000 nested arrays', `${'['.repeat(10_000)}${']'.repeat(10_000)}`, 400],
    ['10,000 nested objects', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`, 400],
    ['100,000 nested arrays as a value', `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 400],
    ['the same with an integer-like key', `{"1":0,"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 400],
    ['a 200,000-character key', JSON.stringify({ ['k'.repeat(200_000)]: 1 }), 400],
    ['100,000 keys', JSON.stringify(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]))), 413],
    ['100,000 short keys', JSON.stringify(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [i.toString(36), 1]))), 400],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), 400],
    ['a lone surrogate escape (SPEC section 11: not well-formed text)', '{"a":"\\ud800"}', 400],
    ['a NUL in a key', '{"a\\u0000b":1}', 400],
    ['a number too large for a double', '{"a":1e400}', 202],
    ['a body of only whitespace', '   \n ', 400],
    ['a UTF-8 byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]), 202],
  ])('survives %s', async (_what, body, status) => {
    const { app } = world();
    const res = await post(app, body);
    expect(res.status).toBe(status);
    await worlds.writer.drain(10_000);
    expectWellFormedFiles();
    expect((await request(app).get('/healthz')).status).toBe(200);
  });

  it('does not let __proto__, constructor or prototype keys pollute anything', async () => {
    const { app } = world();
    const res = await post(app, '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":1}');
    expect(res.status).toBe(202);
    await worlds.writer.drain(10_000);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(readCsv(join(worlds.dir, 'data.csv'))).toEqual([
      ['received_at', '__proto__.polluted', 'constructor.prototype.polluted', 'prototype'],
      [expect.any(String), 'yes', 'yes', '1'],
    ]);
  });

  it('stays responsive while a slow body trickles in, and stores nothing of it', async () => {
    const { app } = world();
    const server: Server = createServer(app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    try {
      const sockets = Array.from({ length: 20 }, () => connect(port, '127.0.0.1'));
      await Promise.all(sockets.map((socket) => once(socket, 'connect')));
      for (const socket of sockets) {
        socket.write('POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":');
      }
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      const ok = await fetch(`http://127.0.0.1:${port}/data?ack=durable`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"fast":1}',
      });
      expect(ok.status).toBe(201);
      for (const socket of sockets) socket.destroy();
      await worlds.writer.drain(5_000);
      expect(readCsv(join(worlds.dir, 'data.csv'))).toEqual([['received_at', 'fast'], [expect.any(String), '1']]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
