/**
 * The dashboard's pure and file-reading parts: numbers in cells, the bounded
 * memory of recent points, the tail reader (which must never read a whole
 * file), restoring points from files the real writer wrote, and the event
 * hub's client bookkeeping.
 */
import { EventEmitter } from 'node:events';
import { appendFileSync, closeSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Request, Response } from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { type EventHub, MAX_LAG_BYTES, createEventHub } from '../../src/ingest/dashboard/event-hub.js';
import { PUSH_INTERVAL_MS, createLiveFeed } from '../../src/ingest/dashboard/live-feed.js';
import { MAX_CELL_CHARS, MAX_FIELDS, MAX_LAST_CELLS, MAX_POINTS, PointRing, WINDOW_MS, createLivePoints } from '../../src/ingest/dashboard/live-points.js';
import { parseNumericCell } from '../../src/ingest/dashboard/numeric.js';
import { createStreamActivity } from '../../src/server/stream-activity.js';
import { restoreRecentPoints } from '../../src/ingest/dashboard/restore-points.js';
import { unguardCell } from '../../src/storage/csv.js';
import { type OpenFile, readHeader, readTail } from '../../src/storage/csv.js';
import type { Reading } from '../../src/storage/reading.js';
import { buildWorld } from '../support/app.js';
import { listFiles } from '../support/csv-files.js';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const reading = (record: Record<string, string>): Reading => ({ columns: Object.keys(record), cells: Object.values(record) });

describe('parseNumericCell', () => {
  it.each([
    ['21.5', 21.5, ''],
    ['-3.5', -3.5, ''],
    ['+7', 7, ''],
    ['1e3', 1000, ''],
    ['2.5E-2', 0.025, ''],
    ['.5', 0.5, ''],
    ['25.1C', 25.1, 'C'],
    ['1013hPa', 1013, 'hPa'],
    ['1013.2 hPa', 1013.2, 'hPa'],
    ['45%', 45, '%'],
    ['21.5°C', 21.5, '°C'],
    ['12 µg/m3', 12, 'µg/m3'],
    ['3.3V', 3.3, 'V'],
    [' 42 ', 42, ''],
  ])('%j is %d with unit %j', (cell, value, unit) => {
    expect(parseNumericCell(cell)).toEqual({ value, unit });
  });

  it.each(['', 'true', 'false', 'open', 'NaN', 'Infinity', '12:30', '2026-11-23', '2026-11-23T10:15:00.000Z', '1e999', '5 apples and pears', '--5', '1,5', '0x1F!', `1${'0'.repeat(70)}`])(
    '%j is not a number',
    (cell) => {
      expect(parseNumericCell(cell)).toBeNull();
    },
  );
});

describe('PointRing', () => {
  it('keeps one point a second, the newest value', () => {
    const ring = new PointRing(10);
    ring.push(1_000, 1);
    ring.push(1_500, 2);
    ring.push(2_000, 3);
    expect(ring.since(0)).toEqual({ t: [1_500, 2_000], v: [2, 3] });
  });

  it('holds at most its capacity, dropping the oldest', () => {
    const ring = new PointRing(100);
    for (let s = 0; s < 250; s++) ring.push(s * 1000, s);
    expect(ring.length).toBe(100);
    const { t, v } = ring.since(0);
    expect(v[0]).toBe(150);
    expect(v.at(-1)).toBe(249);
    expect(t).toEqual([...t].sort((a, b) => a - b));
  });

  it('drops points older than the window as new ones come', () => {
    const ring = new PointRing(MAX_POINTS);
    ring.push(0, 1);
    ring.push(WINDOW_MS / 2, 2);
    ring.push(WINDOW_MS + 60_000, 3);
    expect(ring.since(0).v).toEqual([2, 3]);
  });

  it('puts a point from a clock stepped back on the newest one instead of out of order', () => {
    const ring = new PointRing(10);
    ring.push(10_000, 1);
    ring.push(5_000, 2);
    expect(ring.since(0)).toEqual({ t: [10_000], v: [2] });
  });
});

describe('createLivePoints', () => {
  let now = Date.UTC(2026, 10, 23, 12, 0, 0);
  let activity = createStreamActivity(['data', 'other'], () => now);
  const live = () => {
    activity = createStreamActivity(['data', 'other'], () => now);
    return createLivePoints({ streams: ['data', 'other'], quietAfterSec: 120, now: () => now, activity });
  };

  it('charts numeric fields with their units, shows the last reading, counts rows per minute', () => {
    const points = live();
    const update = points.record('data', [reading({ t: '21.5C', door: 'open', n: '1' }), reading({ t: '22C', p: '1013hPa', gone: '' })], now - 2000);
    expect(update).toEqual({
      stream: 'data',
      at: now - 2000,
      rows: 2,
      rows_per_minute: 2,
      last_reading: { received_at: new Date(now - 2000).toISOString(), cells: [['t', '22C'], ['p', '1013hPa']] },
      fields: [
        { name: 't', unit: 'C', v: 22 },
        { name: 'p', unit: 'hPa', v: 1013 },
        { name: 'n', unit: '', v: 1 },
      ],
    });
    points.record('data', [reading({ t: '23C' })], now - 1000);
    // The ingest pipeline notes each accepted request in the stream activity, the one source of "last received".
    activity.record('data', now - 1000);
    const state = points.snapshot();
    expect(state).toMatchObject({ now, window_sec: 3600, quiet_after_sec: 120 });
    expect(state.streams.map((s) => s.stream)).toEqual(['data', 'other']);
    const data = state.streams[0];
    expect(data?.rows_per_minute).toBe(3);
    expect(data?.last_received).toBe(new Date(now - 1000).toISOString());
    expect(data?.fields.find((f) => f.name === 't')).toEqual({ name: 't', unit: 'C', t: [now - 2000, now - 1000], v: [22, 23] });
    expect(state.streams[1]).toEqual({ stream: 'other', last_received: null, rows_per_minute: 0, last_reading: null, fields: [] });
  });

  it('ignores streams that are not configured', () => {
    expect(live().record('nope', [reading({ t: '1' })], now)).toBeNull();
  });

  it('rows per minute count only the last 60 s', () => {
    const points = live();
    points.record('data', [reading({ a: 'x' })], now - 90_000);
    points.record('data', [reading({ a: 'x' }), reading({ a: 'y' })], now - 30_000);
    expect(points.snapshot().streams[0]?.rows_per_minute).toBe(2);
    now += 31_000;
    expect(points.snapshot().streams[0]?.rows_per_minute).toBe(0);
  });

  it('leaves points older than the window out of the snapshot', () => {
    const points = live();
    points.record('data', [reading({ t: '1' })], now - WINDOW_MS - 1000);
    points.record('data', [reading({ t: '2' })], now - 1000);
    expect(points.snapshot().streams[0]?.fields[0]?.v).toEqual([2]);
  });

  it('is bounded: at most MAX_FIELDS fields, MAX_LAST_CELLS cells of MAX_CELL_CHARS characters', () => {
    const points = live();
    const wide: Record<string, string> = {};
    for (let i = 0; i < 300; i++) wide[`f${i}`] = `${i}${'x'.repeat(i === 0 ? 1000 : 0)}`;
    wide.f0 = 'y'.repeat(1000);
    points.record('data', [reading(wide)], now);
    const data = points.snapshot().streams[0];
    expect(data?.fields).toHaveLength(MAX_FIELDS);
    expect(data?.last_reading?.cells).toHaveLength(MAX_LAST_CELLS);
    expect(data?.last_reading?.cells[0]?.[1]).toHaveLength(MAX_CELL_CHARS);
    // A day of one reading a second still keeps one hour's points per field.
    for (let s = 0; s < 5000; s++) points.record('data', [reading({ f1: String(s) })], now + s * 1000);
    now += 5000 * 1000;
    expect(points.snapshot().streams[0]?.fields.find((f) => f.name === 'f1')?.t.length).toBeLessThanOrEqual(MAX_POINTS);
  });

  it('keeps the newest reading when an older one arrives after it (restored rows, a clock step)', () => {
    const points = live();
    points.record('data', [reading({ t: '2' })], now);
    points.record('data', [reading({ t: '1' })], now - 5000);
    expect(points.snapshot().streams[0]?.last_reading?.cells).toEqual([['t', '2']]);
  });
});

describe('readTail', () => {
  const dir = useTempDir();

  const row = (i: number) => `2026-11-23T10:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.000Z,${i},"note, ${i}"\n`;

  /** fs.promises.open, counting every byte the reader's reads return. */
  function countingOpen(): { open: OpenFile; bytes: () => number } {
    let bytes = 0;
    const counting: OpenFile = async (path, flags) => {
      const handle = await open(path, flags);
      return {
        stat: () => handle.stat(),
        read: async (buffer, offset, length, position) => {
          const result = await handle.read(buffer, offset, length, position);
          bytes += result.bytesRead;
          return result;
        },
        close: () => handle.close(),
      };
    };
    return { open: counting, bytes: () => bytes };
  }

  it('reads a large file\'s header and last rows only, never the whole file', async () => {
    const path = join(dir.path, 'big.csv');
    const fd = openSync(path, 'w');
    writeSync(fd, 'received_at,seq,note\n');
    const total = 300_000;
    let chunk = '';
    for (let i = 0; i < total; i++) {
      chunk += row(i);
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    writeSync(fd, chunk);
    closeSync(fd);
    expect(statSync(path).size).toBeGreaterThan(10 * 1024 * 1024);

    const counter = countingOpen();
    const tail = await readTail(path, 64 * 1024, counter.open);
    expect(tail).not.toBeNull();
    // The header read (one 16 KiB chunk) plus the 64 KiB tail.
    expect(counter.bytes()).toBeLessThanOrEqual(16 * 1024 + 64 * 1024);
    expect(tail?.bytesRead).toBe(counter.bytes());
    expect(tail?.header).toEqual(['received_at', 'seq', 'note']);
    expect(tail?.cut).toBe(true);
    const seqs = tail?.rows.map((r) => Number(r[1])) ?? [];
    expect(seqs.at(-1)).toBe(total - 1);
    expect(seqs.length).toBeGreaterThan(1000);
    expect(seqs).toEqual(seqs.map((_, k) => (seqs[0] as number) + k)); // consecutive, none torn
    for (const r of tail?.rows ?? []) expect(r[2]).toBe(`note, ${r[1]}`);
  });

  it('drops a last row not yet ended and a tail that starts inside a quoted cell holding newlines', async () => {
    const path = join(dir.path, 'data.csv');
    const quoted = `2026-11-23T10:00:00.000Z,1,"line one\n2026-11-23T10:00:01.000Z,fake,row\nline three"\n`;
    writeFileSync(path, `received_at,seq,note\n${quoted}${row(2)}${row(3)}2026-11-23T10:00:09.000Z,4,"cut`);
    // Start the tail inside the quoted cell, just after its first newline.
    const size = statSync(path).size;
    const start = `received_at,seq,note\n2026-11-23T10:00:00.000Z,1,"line one\n20`.length;
    const tail = await readTail(path, size - start);
    expect(tail?.rows.map((r) => r[1])).toEqual(['2', '3']);
    const whole = await readTail(path);
    expect(whole?.cut).toBe(false);
    expect(whole?.rows.map((r) => r[1])).toEqual(['1', '2', '3']);
    expect(whole?.rows[0]?.[2]).toBe('line one\n2026-11-23T10:00:01.000Z,fake,row\nline three');
  });

  it('gives null for a file without a whole header line, and the header alone with readHeader', async () => {
    const path = join(dir.path, 'x.csv');
    writeFileSync(path, 'received_at,se');
    expect(await readTail(path)).toBeNull();
    expect(await readHeader(path)).toBeNull();
    appendFileSync(path, 'q\n');
    expect(await readTail(path)).toEqual({ header: ['received_at', 'seq'], headerEnd: 16, rows: [], cut: false, bytesRead: 16 });
    expect(await readHeader(path)).toEqual(['received_at', 'seq']);
  });
});

describe('restoreRecentPoints', () => {
  const dir = useTempDir();

  it('restores from files the writer wrote, across an archive-and-widen, as the live feed saw them', async () => {
    let now = Date.UTC(2026, 10, 23, 12, 0, 0);
    const world = buildWorld(dir.path, { now: () => now });
    const post = async (body: object) => {
      now += 1000;
      await request(world.app).post('/data?ack=durable').send(body).expect(201);
    };
    await post({ t: '20.5C', note: '-minus' });
    await post({ t: '21C', note: '=1+1' });
    await post({ t: '-3.5C', hum: 40, note: '@x' }); // a new key: data.csv is archived
    await post({ t: '22C', hum: 41 });
    await world.writer.close();
    expect(listFiles(dir.path).filter((f) => f.startsWith('data.'))).toHaveLength(2);

    const activity = createStreamActivity(['data', 'data2'], () => now);
    const restored = createLivePointsFor(now, activity);
    const result = await restoreRecentPoints({ dataDir: dir.path, streams: ['data', 'data2'], live: restored, activity, now: () => now });
    expect(result.rows).toBe(4);
    // "Last received" comes back too, for every reader of the stream activity.
    expect(activity.lastReceived('data')).toBe(world.activity.lastReceived('data'));
    expect(activity.lastReceived('data2')).toBeNull();
    const live = world.live.snapshot();
    const back = restored.snapshot();
    expect(back.streams[0]?.fields).toEqual(live.streams[0]?.fields);
    expect(back.streams[0]?.fields.find((f) => f.name === 't')?.v).toEqual([20.5, 21, -3.5, 22]);
    // The formula guard's quote is taken off again: the card shows what was sent.
    expect(back.streams[0]?.last_reading).toEqual(live.streams[0]?.last_reading);
    expect(back.streams[0]?.last_received).toBe(live.streams[0]?.last_received);
    expect(back.streams[1]?.last_reading).toBeNull();
  });

  it('skips a file it cannot read and says which, so a chart never keeps the server from starting', async () => {
    const now = Date.UTC(2026, 10, 23, 12, 0, 0);
    writeFileSync(join(dir.path, 'data.csv'), `received_at,t\n${new Date(now - 5000).toISOString()},1\n`);
    const live = createLivePointsFor(now);
    const failing: OpenFile = () => Promise.reject(Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' }));
    const result = await restoreRecentPoints({ dataDir: dir.path, streams: ['data'], live, activity: createStreamActivity(['data'], () => now), now: () => now, open: failing });
    expect(result).toEqual({ rows: 0, bytes: 0, unreadable: [{ file: 'data.csv', error: 'EIO: i/o error, open' }] });
  });

  it('stops at the byte budget and at the window', async () => {
    const now = Date.UTC(2026, 10, 23, 12, 0, 0);
    const old = new Date(now - 2 * WINDOW_MS).toISOString();
    const recent = (s: number) => new Date(now - s * 1000).toISOString();
    writeFileSync(join(dir.path, 'data-2026-11-21.csv'), `received_at,t\n${old},1\n`);
    writeFileSync(join(dir.path, 'data-2026-11-22.csv'), `received_at,t\n${old},2\n${recent(3000)},3\n`);
    writeFileSync(join(dir.path, 'data-2026-11-23.csv'), `received_at,t\n${recent(20)},4\n${recent(10)},5\n`);
    const live = createLivePointsFor(now);
    const opened: string[] = [];
    const spy: OpenFile = async (path, flags) => {
      opened.push(path);
      return open(path, flags);
    };
    await restoreRecentPoints({ dataDir: dir.path, streams: ['data'], live, activity: createStreamActivity(['data'], () => now), now: () => now, open: spy });
    // The 22nd reaches back past the window: the 21st is not opened.
    expect(opened.map((p) => p.slice(dir.path.length + 1))).toEqual(['data-2026-11-23.csv', 'data-2026-11-22.csv']);
    expect(live.snapshot().streams[0]?.fields[0]?.v).toEqual([3, 4, 5]);

    const small = createLivePointsFor(now);
    const { bytes } = await restoreRecentPoints({ dataDir: dir.path, streams: ['data'], live: small, activity: createStreamActivity(['data'], () => now), now: () => now, maxBytesPerStream: 30 });
    expect(bytes).toBeLessThanOrEqual(16 * 1024);
    expect(small.snapshot().streams[0]?.fields[0]?.v).toEqual([5]);
  });

  it('unguards only what the formula guard added', () => {
    expect(unguardCell("'-5C")).toBe('-5C');
    expect(unguardCell("'=A1")).toBe('=A1');
    expect(unguardCell("'quoted'")).toBe("'quoted'");
    expect(unguardCell('-5')).toBe('-5');
  });
});

function createLivePointsFor(now: number, activity = createStreamActivity(['data', 'data2'], () => now)) {
  return createLivePoints({ streams: ['data', 'data2'], quietAfterSec: 120, now: () => now, activity });
}

describe('createEventHub', () => {
  /** A stand-in for an Express response, enough for the hub. */
  class FakeResponse extends EventEmitter {
    text = '';
    ended = false;
    destroyed = false;
    /** What `writableLength` reports: bytes not yet taken by the client. */
    lag = 0;
    get writableLength(): number {
      return this.lag;
    }
    writeHead(): this {
      return this;
    }
    flushHeaders(): void {}
    write(chunk: string): boolean {
      this.text += chunk;
      return true;
    }
    end(): void {
      this.ended = true;
      this.emit('close');
    }
    destroy(): void {
      this.destroyed = true;
      this.emit('close');
    }
  }
  const fakeResponse = () => new FakeResponse() as FakeResponse & Response;
  const req = {} as Request;

  it('sends the first event, then published ones; a closed client is removed', () => {
    const hub = createEventHub({ maxClients: 2 });
    const a = fakeResponse();
    hub.connect(req, a, { event: 'state', data: { n: 1 } });
    expect(a.text).toBe('retry: 2000\n\nevent: state\ndata: {"n":1}\n\n');
    hub.publish('rows', { line: 'a\nb' });
    expect(a.text.endsWith('event: rows\ndata: {"line":"a\\nb"}\n\n')).toBe(true);
    expect(hub.clients).toBe(1);
    a.emit('close');
    expect(hub.clients).toBe(0);
    hub.close();
  });

  it('refuses past the cap with 503 TOO_MANY_CLIENTS and Retry-After, and everyone once closed', () => {
    const hub = createEventHub({ maxClients: 1 });
    hub.connect(req, fakeResponse(), { event: 'state', data: {} });
    expect(() => hub.connect(req, fakeResponse(), { event: 'state', data: {} })).toThrow(
      expect.objectContaining({ statusCode: 503, code: 'TOO_MANY_CLIENTS', headers: { 'Retry-After': '30' } }),
    );
    hub.close();
    expect(hub.clients).toBe(0);
    expect(() => hub.connect(req, fakeResponse(), { event: 'state', data: {} })).toThrow(expect.objectContaining({ code: 'SHUTTING_DOWN' }));
  });

  it('drops a client that stopped reading once it lags by more than MAX_LAG_BYTES', () => {
    const hub = createEventHub();
    const slow = fakeResponse();
    const fine = fakeResponse();
    hub.connect(req, slow, { event: 'state', data: {} });
    hub.connect(req, fine, { event: 'state', data: {} });
    slow.lag = MAX_LAG_BYTES + 1000;
    hub.publish('rows', {});
    expect(slow.destroyed).toBe(true);
    expect(fine.destroyed).toBe(false);
    expect(hub.clients).toBe(1);
    hub.close();
    expect(fine.ended).toBe(true);
  });

  it('sends keep-alive comments while clients are connected', async () => {
    const hub = createEventHub({ keepAliveMs: 10 });
    const res = fakeResponse();
    hub.connect(req, res, { event: 'state', data: {} });
    await waitFor(() => res.text.includes(': keep-alive\n\n'), 'a keep-alive comment');
    hub.close();
  });
});

describe('createLiveFeed', () => {
  /** A hub that records what is published, with one client connected. */
  function recordingHub(): EventHub & { published: Array<{ event: string; data: unknown }> } {
    const published: Array<{ event: string; data: unknown }> = [];
    return { published, clients: 1, connect: () => {}, publish: (event, data) => published.push({ event, data }), close: () => {} };
  }

  it('pushes the first batch at once and merges those soon after into one event per stream', async () => {
    const hub = recordingHub();
    const live = createLivePoints({ streams: ['data', 'data2'], quietAfterSec: 120, now: Date.now, activity: createStreamActivity(['data', 'data2'], Date.now) });
    const feed = createLiveFeed({ live, eventHub: hub, logger: memoryLogger().logger });
    const t = Date.now();
    feed('data', [reading({ a: '1' })], t);
    expect(hub.published).toHaveLength(1);
    feed('data', [reading({ a: '2', b: '5V' })], t);
    feed('data', [reading({ a: '3' }), reading({ c: 'x' })], t);
    feed('data2', [reading({ z: '9' })], t);
    expect(hub.published).toHaveLength(1);
    await waitFor(() => hub.published.length === 3, `the merged events after ${PUSH_INTERVAL_MS} ms`);
    expect(hub.published[1]?.data).toMatchObject({ stream: 'data', rows: 3, fields: [{ name: 'a', v: 3 }, { name: 'b', unit: 'V', v: 5 }] });
    expect(hub.published[2]?.data).toMatchObject({ stream: 'data2', rows: 1 });
    // Still noted in memory, every row.
    expect(live.snapshot().streams[0]?.rows_per_minute).toBe(4);
  });

  it('does no event work without clients, and never lets a fault reach the ingest answer', () => {
    const hub = { ...recordingHub(), clients: 0 };
    const live = createLivePoints({ streams: ['data'], quietAfterSec: 120, now: Date.now, activity: createStreamActivity(['data'], Date.now) });
    const { logger, lines } = memoryLogger();
    createLiveFeed({ live, eventHub: hub, logger })('data', [reading({ a: '1' })], Date.now());
    expect(hub.published).toHaveLength(0);
    expect(live.snapshot().streams[0]?.rows_per_minute).toBe(1);
    const broken = { ...live, record: () => { throw new Error('boom'); } };
    expect(() => createLiveFeed({ live: broken, eventHub: hub, logger })('data', [reading({ a: '1' })], Date.now())).not.toThrow();
    expect(lines.find((l) => l.msg === 'dashboard update failed')).toMatchObject({ level: 50, stream: 'data' });
  });
});
