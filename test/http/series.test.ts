/**
 * `GET /streams/<name>/series` (SPEC section 13) against createApp(), over day
 * files, archives and `.gz` files: buckets aligned to `bucket_ms`, min, max,
 * mean and count per bucket, units; summaries kept under
 * DATA_DIR/.sensor-ingest/summaries and used only while the file's id, size
 * and modification time match; the current file read on from its summarised
 * offset; bad ranges refused with a 400 in words.
 */
import { appendFileSync, existsSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { bucketFor } from '../../src/ingest/series/series.js';
import fc from 'fast-check';
import { MinuteSummariser, plainDecimal } from '../../src/ingest/series/minute-summary.js';
import { parseRecord } from '../../src/storage/csv.js';
import { compressClosedFile } from '../../src/storage/compress.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { setUpWorlds } from '../support/app.js';

const worlds = setUpWorlds();
const { world } = worlds;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Midnight UTC, six days before "today" in these tests. */
const START = Date.UTC(2026, 10, 24);
const NOW = START + 6 * DAY + 12 * HOUR;

/** The value of `temp` at minute `m` since START: a daily wave, so each hour's min, max and mean are known. */
const tempAt = (m: number): number => Math.round(10 * (15 + 10 * Math.sin((2 * Math.PI * (m % 1440)) / 1440))) / 10;

/** One row a minute (second 30), from START for `days` days into day files; today's file is the current one. */
function seedDays(dir: string, days: number, endMs = NOW): void {
  const byDay = new Map<string, string[]>();
  for (let m = 0; START + m * 60_000 + 30_000 < endMs && m < days * 1440; m++) {
    const at = START + m * 60_000 + 30_000;
    const day = new Date(at).toISOString().slice(0, 10);
    const lines = byDay.get(day) ?? ['received_at,temp,hum,note'];
    lines.push(`${new Date(at).toISOString()},${tempAt(m)},${40 + (m % 10)}%,n${m}`);
    byDay.set(day, lines);
  }
  for (const [day, lines] of byDay) writeFileSync(join(dir, `data-${day}.csv`), `${lines.join('\n')}\n`);
}

interface Answer {
  stream: string;
  from: string;
  to: string;
  bucket_ms: number;
  fields: Record<string, { unit: string; t: number[]; min: number[]; max: number[]; mean: number[]; count: number[] }>;
}

describe('GET /streams/<name>/series', () => {
  it('answers a week in hourly buckets aligned to bucket_ms, with each bucket\'s min, max, mean and count, from day files', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    seedDays(worlds.dir, 7);
    const from = START;
    const to = START + 7 * DAY;
    const res = await request(w.app).get(`/streams/data/series?from=${new Date(from).toISOString()}&to=${to}&points=168`).expect(200);
    const body = res.body as Answer;
    expect(body).toMatchObject({ stream: 'data', from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket_ms: HOUR });
    expect(Object.keys(body.fields).sort()).toEqual(['hum', 'temp']);
    const temp = body.fields.temp;
    // Rows until NOW only (6.5 days): every hour up to it, none empty, none after.
    expect(temp?.t).toHaveLength(6 * 24 + 12);
    expect(temp?.t.every((t) => t % HOUR === 0)).toBe(true);
    expect(temp?.count.every((count) => count === 60)).toBe(true);
    for (const [i, t] of (temp?.t ?? []).entries()) {
      const minutes = Array.from({ length: 60 }, (_, k) => (t - START) / 60_000 + k);
      const values = minutes.map(tempAt);
      expect(temp?.min[i]).toBe(Math.min(...values));
      expect(temp?.max[i]).toBe(Math.max(...values));
      expect(temp?.mean[i]).toBeCloseTo(values.reduce((a, b) => a + b, 0) / 60, 9);
    }
    expect(body.fields.hum).toMatchObject({ unit: '%' });
    expect(body.fields.hum?.min[0]).toBe(40);
    expect(body.fields.hum?.max[0]).toBe(49);
    expect(temp?.unit).toBe('');
  });

  it('takes ms or ISO times, defaults to the last hour, and leaves out empty buckets', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    seedDays(worlds.dir, 7, START + 2 * DAY); // nothing after day two
    const week = (await request(w.app).get(`/streams/data/series?from=${START}&to=${START + 7 * DAY}&points=7`).expect(200)).body as Answer;
    expect(week.bucket_ms).toBe(DAY);
    expect(week.fields.temp?.t).toEqual([START, START + DAY]);
    expect(week.fields.temp?.count).toEqual([1440, 1440]);
    // Without a range: the last hour before now, where there are no rows.
    const lastHour = (await request(w.app).get('/streams/data/series').expect(200)).body as Answer;
    expect(lastHour.fields).toEqual({});
    expect(lastHour.bucket_ms).toBe(60_000);
    expect(Date.parse(lastHour.to) - Date.parse(lastHour.from)).toBe(HOUR);
  });

  it('reads archives and .gz files alike, and a compressed day gives the same answer', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    seedDays(worlds.dir, 7);
    // Day one's first half in an archive of its own, as an archive-and-widen leaves it.
    const dayOne = join(worlds.dir, 'data-2026-11-24.csv');
    const lines = readFileSync(dayOne, 'utf8').trimEnd().split('\n');
    writeFileSync(join(worlds.dir, 'data-2026-11-24.20261124T120000Z.csv'), `${lines.slice(0, 721).join('\n')}\n`);
    writeFileSync(dayOne, `${[lines[0], ...lines.slice(721)].join('\n')}\n`);
    const url = `/streams/data/series?from=${START}&to=${START + 3 * DAY}&points=72`;
    const plain = (await request(w.app).get(url).expect(200)).body as Answer;
    expect(plain.fields.temp?.count.slice(0, 24)).toEqual(Array(24).fill(60));
    for (const name of ['data-2026-11-24.20261124T120000Z.csv', 'data-2026-11-24.csv', 'data-2026-11-25.csv']) {
      expect((await compressClosedFile(join(worlds.dir, name), { lock: lockForCommit })).outcome).toBe('compressed');
    }
    expect(readdirSync(worlds.dir).filter((name) => name.endsWith('.gz'))).toHaveLength(3);
    expect((await request(w.app).get(url).expect(200)).body).toEqual(plain);
  });

  it('keeps each closed file\'s summary, uses it while the file\'s size and time match, and makes it again when they change', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    seedDays(worlds.dir, 7);
    const url = `/streams/data/series?from=${START}&to=${START + DAY}&points=1`;
    const first = (await request(w.app).get(url).expect(200)).body as Answer;
    expect(first.fields.temp?.count).toEqual([1440]);
    const summaryPath = join(worlds.dir, '.sensor-ingest', 'summaries', 'data-2026-11-24.csv.json');
    expect(existsSync(summaryPath)).toBe(true);

    // A new app (a restart) reads the kept summary instead of the file: a doctored count shows it was used.
    const kept = JSON.parse(readFileSync(summaryPath, 'utf8')) as { columns: { temp: { count: number[] } } };
    kept.columns.temp.count[0] = 1000;
    writeFileSync(summaryPath, JSON.stringify(kept));
    const restarted = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    expect(((await request(restarted.app).get(url).expect(200)).body as Answer).fields.temp?.count).toEqual([1440 - 1 + 1000]);

    // The file changes (a row more, a new modification time): the summary is made again from it.
    appendFileSync(join(worlds.dir, 'data-2026-11-24.csv'), `${new Date(START + 5_000).toISOString()},99,40%,late\n`);
    utimesSync(join(worlds.dir, 'data-2026-11-24.csv'), new Date(), new Date(Date.now() + 5_000));
    const again = (await request(restarted.app).get(url).expect(200)).body as Answer;
    expect(again.fields.temp?.count).toEqual([1441]);
    expect(again.fields.temp?.max).toEqual([99]);
  });

  it('reads the current file on from where its summary ended', async () => {
    const now = { ms: NOW };
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => now.ms });
    seedDays(worlds.dir, 7);
    const url = () => `/streams/data/series?from=${NOW - HOUR}&to=${NOW + HOUR}&points=120`;
    const before = (await request(w.app).get(url()).expect(200)).body as Answer;
    expect(before.fields.temp?.t.at(-1)).toBe(NOW - 60_000);
    const current = join(worlds.dir, `data-${new Date(NOW).toISOString().slice(0, 10)}.csv`);
    appendFileSync(current, `${new Date(NOW + 10_000).toISOString()},-5,41%,x\n${new Date(NOW + 70_000).toISOString()},-6,41%,y\n`);
    const after = (await request(w.app).get(url()).expect(200)).body as Answer;
    expect(after.fields.temp?.t.slice(-2)).toEqual([NOW, NOW + 60_000]);
    expect(after.fields.temp?.min.slice(-2)).toEqual([-5, -6]);
    expect(after.fields.temp?.t.slice(0, -2)).toEqual(before.fields.temp?.t);
  });

  it('reads a current file emptied and written again from its start, not from its old offset', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    const current = join(worlds.dir, `data-${new Date(NOW).toISOString().slice(0, 10)}.csv`);
    const at = (m: number) => new Date(NOW - HOUR + m * 60_000).toISOString();
    writeFileSync(current, `received_at,temp\n${at(0)},1\n${at(1)},2\n`);
    const url = `/streams/data/series?from=${NOW - HOUR}&to=${NOW}&points=60`;
    expect(((await request(w.app).get(url).expect(200)).body as Answer).fields.temp?.count).toEqual([1, 1]);
    // Emptied and written again (same id, longer now): the old offset falls inside a row.
    writeFileSync(current, `received_at,temp\n${at(5)},10.25\n${at(6)},11.5\n${at(7)},12\n`);
    const again = (await request(w.app).get(url).expect(200)).body as Answer;
    expect(again.fields.temp).toMatchObject({ t: [5, 6, 7].map((m) => NOW - HOUR + m * 60_000), min: [10.25, 11.5, 12], count: [1, 1, 1] });
  });

  it('makes a kept summary that is not one of ours again, and answers from the file', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    seedDays(worlds.dir, 2);
    const url = `/streams/data/series?from=${START}&to=${START + DAY}&points=1`;
    const summaryPath = join(worlds.dir, '.sensor-ingest', 'summaries', 'data-2026-11-24.csv.json');
    await request(w.app).get(url).expect(200);
    const kept = JSON.parse(readFileSync(summaryPath, 'utf8')) as Record<string, unknown>;
    for (const bad of [{ ...kept, columns: null }, { ...kept, columns: { temp: { unit: '', minutes: [2, 1], min: [1, 1], max: [1, 1], sum: [1, 1], count: [1, 1] } } }, { ...kept, columns: { temp: null } }]) {
      writeFileSync(summaryPath, JSON.stringify(bad));
      const fresh = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
      expect(((await request(fresh.app).get(url).expect(200)).body as Answer).fields.temp?.count).toEqual([1440]);
    }
  });

  it('gives a stream of many columns fewer points each, so an answer stays bounded', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    const columns = Array.from({ length: 500 }, (_, i) => `c${i}`);
    const lines = [`received_at,${columns.join(',')}`];
    for (let m = 0; m < 1000; m++) lines.push(`${new Date(START + m * 60_000).toISOString()},${columns.map((_, i) => i + m).join(',')}`);
    writeFileSync(join(worlds.dir, 'data-2026-11-24.csv'), `${lines.join('\n')}\n`);
    const body = (await request(w.app).get(`/streams/data/series?from=${START}&to=${START + 1000 * 60_000}&points=2000`).expect(200)).body as Answer;
    expect(Object.keys(body.fields)).toHaveLength(500);
    // 200,000 values over 500 columns: at most 400 buckets each (here 3-minute ones).
    expect(body.fields.c0?.t.length).toBeLessThanOrEqual(400);
    expect(body.fields.c0?.count.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  it('takes columns named __proto__, constructor and toString as any others, and again from a kept summary', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW });
    const at = (m: number) => new Date(START + m * 60_000).toISOString();
    writeFileSync(join(worlds.dir, 'data-2026-11-24.csv'), `received_at,__proto__,constructor,toString\n${at(0)},1,2,3\n${at(1)},4,5,6\n`);
    const url = `/streams/data/series?from=${START}&to=${START + HOUR}&points=1`;
    for (const app of [w.app, world({ env: { CSV_ROTATE: 'daily' }, now: () => NOW }).app]) {
      const res = await request(app).get(url).expect(200);
      expect(res.text).toContain('"__proto__":{"unit":"","t":[');
      const body = JSON.parse(res.text) as Answer;
      expect(Object.keys(body.fields)).toEqual(['__proto__', 'constructor', 'toString']);
      expect(Object.getOwnPropertyDescriptor(body.fields, '__proto__')?.value).toMatchObject({ min: [1], max: [4], count: [2] });
      expect(body.fields.constructor).toMatchObject({ mean: [3.5], count: [2] });
    }
  });

  it('refuses bad ranges and points with a 400 in words, an unknown stream with a 404, and needs READ_TOKEN when set', async () => {
    const w = world({ env: { CSV_ROTATE: 'daily', READ_TOKEN: 'r-tok' }, now: () => NOW });
    seedDays(worlds.dir, 1);
    const auth = { authorization: 'Bearer r-tok' };
    for (const [query, words] of [
      [`from=${START + DAY}&to=${START}`, 'must be before'],
      [`from=${START}&to=${START}`, 'must be before'],
      ['from=yesterday', 'from must be milliseconds since the epoch or an ISO 8601 time'],
      ['to=2026-13-45', 'to must be'],
      ['from=2026-02-30', 'from must be'],
      ['from=1969-12-31', 'from must be'],
      [`from=${START}&to=${START + DAY}&points=0`, 'points must be a whole number from 1 to 2000'],
      [`from=${START}&to=${START + DAY}&points=2001`, 'points must be'],
      [`from=${START}&to=${START + DAY}&points=1.5`, 'points must be'],
    ] as const) {
      const res = await request(w.app).get(`/streams/data/series?${query}`).set(auth);
      expect(res.status, query).toBe(400);
      expect(res.body).toMatchObject({ error: expect.stringContaining(words) });
    }
    expect((await request(w.app).get('/streams/nope/series').set(auth)).status).toBe(404);
    expect((await request(w.app).get(`/streams/data/series?from=${START}&to=${START + DAY}`)).status).toBe(401);
    expect((await request(w.app).get(`/streams/data/series?from=${START}&to=${START + DAY}&token=r-tok`)).status).toBe(200);
    expect((await request(w.app).post('/streams/data/series').set(auth)).status).toBe(405);
  });
});

describe('bucketFor and the summariser', () => {
  it('picks a bucket at once, however large the range, and it always fits', () => {
    for (const [from, to, points] of [[1e14 + 1, 2e14 + 1, 1], [1.2e14 + 1, 2.4e14 + 1, 2], [1.2e14 + 1, 2.4e14 + 1, 1]] as const) {
      const bucket = bucketFor(from, to, points);
      expect(Math.floor((to - 1) / bucket) - Math.floor(from / bucket) + 1).toBeLessThanOrEqual(points);
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 46 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 2000 }), (from, span, points) => {
        const bucket = bucketFor(from, from + span, points);
        expect(bucket % 60_000).toBe(0);
        expect(Math.floor((from + span - 1) / bucket) - Math.floor(from / bucket) + 1).toBeLessThanOrEqual(points);
        // Not more than twice what an unaligned split needs (one point: a bucket past `to`).
        if (points > 1) expect(bucket).toBeLessThanOrEqual(Math.max(60_000, 2 * Math.ceil(span / (points - 1) / 60_000) * 60_000));
      }),
      { numRuns: 2000 },
    );
  });

  it('picks whole minutes giving at most `points` aligned buckets', () => {
    expect(bucketFor(0, HOUR, 600)).toBe(60_000);
    expect(bucketFor(0, 7 * DAY, 168)).toBe(HOUR);
    expect(bucketFor(0, 30 * DAY, 600)).toBe(72 * 60_000);
    for (const [from, to, points] of [[1_000, 7 * DAY + 17, 600], [59_999, 3 * HOUR, 7], [START + 1, START + DAY - 1, 1]] as const) {
      const bucket = bucketFor(from, to, points);
      expect(bucket % 60_000).toBe(0);
      expect(Math.floor((to - 1) / bucket) - Math.floor(from / bucket) + 1).toBeLessThanOrEqual(points);
    }
  });

  it('reads rows from their bytes as the parser reads their text: quotes, units, text, short rows, many digits', () => {
    const text = [
      '2026-11-24T10:05:10.000Z,20.5,12%,"a, ""quoted""\nnote",-0.25',
      '2026-11-24T10:05:20.000Z,21,13%,plain,1e3',
      '2026-11-24T10:05:30.000Z,22,x',
      '2026-11-24T10:06:00.000Z,12345678901234567,14 %,n/a,.5',
      '2026-11-24T10:06:30.000Z,,15%,,-7',
    ].join('\n') + '\n';
    const header = ['received_at', 't', 'h', 'note', 'v'];
    const fromBytes = new MinuteSummariser();
    fromBytes.setHeader(header);
    fromBytes.addRows(Buffer.from(text), 0, Buffer.byteLength(text));
    const fromText = new MinuteSummariser();
    fromText.setHeader(header);
    for (let offset = 0; offset < text.length; ) {
      const record = parseRecord(text, offset);
      if (record === null) break;
      offset = record.end;
      fromText.add(record.fields);
    }
    expect(fromBytes.result()).toEqual(fromText.result());
    expect(fromBytes.result().t).toMatchObject({ min: [20.5, Number('12345678901234567')], count: [2, 1] });
    expect(fromBytes.result().h).toMatchObject({ unit: '%', sum: [25, 29] });
    expect(fromBytes.result().v).toMatchObject({ sum: [999.75, -6.5] });
    expect(fromBytes.result().note).toBeUndefined();
  });

  it('reads a plain decimal from its bytes exactly as Number() reads its text', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.integer({ min: 0, max: 15 }), (mantissa, shift) => {
        const digits = String(Math.abs(mantissa));
        const text = (mantissa < 0 ? '-' : '') + (shift > 0 && shift < digits.length ? `${digits.slice(0, -shift)}.${digits.slice(-shift)}` : digits);
        const bytes = Buffer.from(text);
        const read = plainDecimal(bytes, 0, bytes.length);
        if (digits.length > 15) expect(Number.isNaN(read)).toBe(true);
        else expect(Object.is(read, Number(text)) || (read === 0 && Number(text) === 0)).toBe(true);
      }),
      { numRuns: 5000 },
    );
    for (const text of ['', '-', '.', '1.', '1.2.3', '+1', '1e3', ' 1', '0x10', '١٢']) expect(Number.isNaN(plainDecimal(Buffer.from(text), 0, Buffer.byteLength(text))), text).toBe(true);
  });

  it('takes each row\'s own minute when a quoted row comes between two of another minute', () => {
    const text = ['2026-11-24T10:15:10.000Z,1,a', '2026-11-24T10:16:10.000Z,2,"q,uoted"', '2026-11-24T10:15:50.000Z,3,b'].join('\n') + '\n';
    const summariser = new MinuteSummariser();
    summariser.setHeader(['received_at', 't', 'note']);
    summariser.addRows(Buffer.from(text), 0, Buffer.byteLength(text));
    expect(summariser.result().t).toMatchObject({ count: [2, 1], sum: [4, 2] });
  });

  it('keeps minutes in order when a clock goes back, and reads units', () => {
    const summariser = new MinuteSummariser();
    summariser.setHeader(['received_at', 't']);
    for (const [at, t] of [['2026-11-24T10:05:10.000Z', '20C'], ['2026-11-24T10:03:00.000Z', '18C'], ['2026-11-24T10:05:50.000Z', '22C'], ['2026-11-24T10:04:00.000Z', 'n/a']]) summariser.add([at as string, t as string]);
    const t = summariser.result().t;
    expect(t?.minutes.map((m) => new Date(m).toISOString().slice(11, 16))).toEqual(['10:03', '10:05']);
    expect(t).toMatchObject({ unit: 'C', min: [18, 20], max: [18, 22], sum: [18, 42], count: [1, 2] });
  });
});

