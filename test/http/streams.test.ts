/**
 * Data access against createApp(), on files the real writer wrote:
 * `GET /streams` lists each stream's files, and `GET /streams/<name>/csv`
 * returns exactly the rows of a range of days, under one header, whether the
 * files rotate daily or not, across archive-and-widen. Paths that try to
 * leave the stream's files, unknown streams and bad days are refused.
 */
import { mkdirSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { countRows } from '../../src/storage/csv.js';
import { compareStreamFiles, isCalendarDay, listStoredFiles, matchStreamFile } from '../../src/storage/stream-files.js';
import { compressClosedFile } from '../../src/storage/compress.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { createInlineRunner } from '../../src/writer/runners.js';
import { defaultWriteDeps } from '../../src/writer/worker/commit.js';
import { type World, setUpWorlds } from '../support/app.js';
import { listFiles, readCsv } from '../support/csv-files.js';

const worlds = setUpWorlds();
const { world } = worlds;
const READ_TOKEN = 'read-tok-456';

const DAYS = ['2026-11-20', '2026-11-21', '2026-11-22', '2026-11-23'] as const;
const at = (day: string, hour: number) => Date.parse(`${day}T${String(hour).padStart(2, '0')}:00:00.000Z`);

/** Posts readings at given times (durably, so they are on disk after). */
async function post(w: World, clock: { now: number }, when: number, body: object): Promise<void> {
  clock.now = when;
  await request(w.app).post('/data?ack=durable').send(body).expect(201);
}

/**
 * Writes, over four days: plain rows, a new key on the second day (an
 * archive-and-widen), a narrower reading, a quoted cell with a newline and
 * a comma, and a formula-guarded cell.
 */
async function writeFourDays(env: Record<string, string>): Promise<{ w: World; clock: { now: number } }> {
  const clock = { now: 0 };
  const w = world({ env, now: () => clock.now });
  await post(w, clock, at(DAYS[0], 9), { id: 'a1', t: '20.5C' });
  await post(w, clock, at(DAYS[0], 18), [{ id: 'a2', t: '20.7C' }, { id: 'a3', t: '21C' }]);
  await post(w, clock, at(DAYS[1], 1), { id: 'b1', t: '19C' });
  await post(w, clock, at(DAYS[1], 2), { id: 'b2', t: '19.5C', hum: 40 }); // new key: archive and widen
  await post(w, clock, at(DAYS[1], 3), { id: 'b3', hum: 41, note: 'two\nlines, "quoted"' }); // and again
  await post(w, clock, at(DAYS[2], 0), { id: 'c1', t: '-2C' });
  await post(w, clock, at(DAYS[2], 23), { id: 'c2', t: '=1+1' });
  await post(w, clock, at(DAYS[3], 12), { id: 'd1', t: '18C', hum: 50 });
  await w.writer.drain(5000);
  return { w, clock };
}

/** The records of a CSV text, header first (csv-parse: an independent reader). */
const records = (text: string): string[][] => parse(text, { relaxColumnCount: false });

/** Rows of the given files (in order) as objects keyed by column, for comparing with a download. */
function rowsOfFiles(dir: string, files: string[]): Array<Record<string, string>> {
  return files.flatMap((file) => {
    const [header = [], ...rows] = readCsv(join(dir, file));
    return rows.map((row) => Object.fromEntries(header.map((column, i) => [column, row[i] as string])));
  });
}

/** A download's rows as objects; every column of the header present in each (empty if absent). */
function rowsOfDownload(text: string): { header: string[]; rows: Array<Record<string, string>> } {
  const [header = [], ...rows] = records(text);
  return { header, rows: rows.map((row) => Object.fromEntries(header.map((column, i) => [column, row[i] as string]))) };
}

/** Fills in the columns a file lacked as empty cells. */
const widen = (rows: Array<Record<string, string>>, header: string[]) =>
  rows.map((row) => Object.fromEntries(header.map((column) => [column, row[column] ?? ''])));

describe('GET /streams/<name>/csv with daily rotation', () => {
  it('returns exactly the rows of the days in range, the day files and their archives in time order, under the union of their headers', async () => {
    const { w } = await writeFourDays({ CSV_ROTATE: 'daily' });
    const dir = worlds.dir;
    const files = listFiles(dir).filter((f) => f.startsWith('data-'));
    // Day two has two archives (each new key) and its current file.
    expect(files.filter((f) => f.startsWith(`data-${DAYS[1]}`))).toHaveLength(3);

    const res = await request(w.app).get(`/streams/data/csv?from=${DAYS[1]}&to=${DAYS[2]}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="data_${DAYS[1]}_${DAYS[2]}.csv"`);
    const { header, rows } = rowsOfDownload(res.text);
    expect(header).toEqual(['received_at', 'id', 't', 'hum', 'note']);
    expect(rows.map((r) => r.id)).toEqual(['b1', 'b2', 'b3', 'c1', 'c2']);

    // The same rows as the files hold, in the files' time order.
    const inRange = files
      .filter((f) => f.startsWith(`data-${DAYS[1]}`) || f.startsWith(`data-${DAYS[2]}`))
      .map((f) => matchStreamFile('data', f))
      .filter((f) => f !== null)
      .sort(compareStreamFiles)
      .map((f) => f.name);
    expect(rows).toEqual(widen(rowsOfFiles(dir, inRange), header));
    expect(rows[2]?.note).toBe('two\nlines, "quoted"');
    expect(rows[4]?.t).toBe("'=1+1"); // as in the file: the formula guard stays
    for (const row of rows) expect((row.received_at ?? '').slice(0, 10) >= DAYS[1] && (row.received_at ?? '').slice(0, 10) <= DAYS[2]).toBe(true);
  });

  it('gives every row without a range, one day with from = to, and the header alone for days with no files', async () => {
    const { w } = await writeFourDays({ CSV_ROTATE: 'daily' });
    const all = await request(w.app).get('/streams/data/csv').expect(200);
    expect(all.headers['content-disposition']).toBe('attachment; filename="data_first_last.csv"');
    expect(rowsOfDownload(all.text).rows.map((r) => r.id)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'c1', 'c2', 'd1']);
    const one = await request(w.app).get(`/streams/data/csv?from=${DAYS[0]}&to=${DAYS[0]}`).expect(200);
    expect(one.text).toBe(readFileSync(join(worlds.dir, `data-${DAYS[0]}.csv`), 'utf8'));
    const open = await request(w.app).get(`/streams/data/csv?from=${DAYS[3]}`).expect(200);
    expect(rowsOfDownload(open.text).rows.map((r) => r.id)).toEqual(['d1']);
    const none = await request(w.app).get('/streams/data/csv?from=2027-01-01&to=2027-01-31').expect(200);
    expect(none.text).toBe('received_at\n');
    expect((await request(w.app).get('/streams/data2/csv')).text).toBe('received_at\n');
  });
});

describe('compressed files (COMPRESS_CLOSED=gzip, SPEC section 12)', () => {
  it('are listed by their .gz names with their size as stored and their rows, and downloaded as they were', async () => {
    const { w } = await writeFourDays({ CSV_ROTATE: 'daily' });
    const dir = worlds.dir;
    const before = await request(w.app).get('/streams/data/csv');
    const oneDay = await request(w.app).get(`/streams/data/csv?from=${DAYS[1]}&to=${DAYS[1]}`);
    const listedBefore = (await request(w.app).get('/streams')).body as { streams: Array<{ files: Array<{ name: string; rows: number }> }> };
    const closed = await listStoredFiles(dir, ['data'], at(DAYS[3], 13));
    for (const file of closed) if (file.compressible === true) await compressClosedFile(file.path, { lock: lockForCommit });
    const files = listFiles(dir).filter((f) => f.startsWith('data-'));
    // Days one and two (day two's archives too) are compressed; day three is yesterday (late rows may come), day four today.
    expect(files.filter((f) => f.endsWith('.gz'))).toHaveLength(4);
    expect(files).toContain(`data-${DAYS[2]}.csv`);

    const listing = (await request(w.app).get('/streams').expect(200)).body as { streams: Array<{ bytes: number; files: Array<{ name: string; bytes: number; rows: number | null }> }> };
    const data = listing.streams.find((stream) => stream.files.length > 0);
    for (const file of data?.files ?? []) expect(file.bytes).toBe(statSync(join(dir, file.name)).size);
    expect(data?.files.map((file) => file.name.replace(/\.gz$/, ''))).toEqual(listedBefore.streams[0]?.files.map((file) => file.name));
    expect(data?.files.map((file) => file.rows)).toEqual(listedBefore.streams[0]?.files.map((file) => file.rows));
    expect(data?.bytes).toBe((data?.files ?? []).reduce((sum, file) => sum + file.bytes, 0));

    expect((await request(w.app).get('/streams/data/csv').expect(200)).text).toBe(before.text);
    expect((await request(w.app).get(`/streams/data/csv?from=${DAYS[1]}&to=${DAYS[1]}`).expect(200)).text).toBe(oneDay.text);
  });
});

describe('an archive name already taken by a compressed archive', () => {
  it('is not given again: the next archive of that second is -1, and both are listed and downloaded', async () => {
    const fixed = Date.UTC(2026, 10, 23, 10, 15, 0);
    const w = world({ runner: createInlineRunner({ ...defaultWriteDeps, now: () => fixed }) });
    await request(w.app).post('/data?ack=durable').send({ a: 1 }).expect(201);
    await request(w.app).post('/data?ack=durable').send({ a: 2, b: 2 }).expect(201);
    const first = join(worlds.dir, 'data.20261123T101500Z.csv');
    expect((await compressClosedFile(first, { lock: lockForCommit })).outcome).toBe('compressed');
    await request(w.app).post('/data?ack=durable').send({ a: 3, b: 3, c: 3 }).expect(201);
    expect(listFiles(worlds.dir).filter((name) => name.startsWith('data')).sort()).toEqual(['data.20261123T101500Z-1.csv', 'data.20261123T101500Z.csv.gz', 'data.csv']);
    const rows = records((await request(w.app).get('/streams/data/csv').expect(200)).text);
    expect(rows.map((row) => row.slice(1))).toEqual([['a', 'b', 'c'], ['1', '', ''], ['2', '2', ''], ['3', '3', '3']]);
  });
});

describe('GET /streams/<name>/csv without rotation', () => {
  it('filters the file and its archives by the day of received_at', async () => {
    const { w } = await writeFourDays({});
    const dir = worlds.dir;
    const files = listFiles(dir).filter((f) => f.startsWith('data.'));
    expect(files).toHaveLength(3); // data.csv and two archives

    const res = await request(w.app).get(`/streams/data/csv?from=${DAYS[1]}&to=${DAYS[1]}`).expect(200);
    const { header, rows } = rowsOfDownload(res.text);
    expect(header).toEqual(['received_at', 'id', 't', 'hum', 'note']);
    expect(rows.map((r) => r.id)).toEqual(['b1', 'b2', 'b3']);
    const ordered = files.map((f) => matchStreamFile('data', f)).filter((f) => f !== null).sort(compareStreamFiles).map((f) => f.name);
    expect(ordered.at(-1)).toBe('data.csv');
    const expected = widen(rowsOfFiles(dir, ordered), header).filter((r) => r.received_at?.startsWith(DAYS[1]));
    expect(rows).toEqual(expected);

    const all = await request(w.app).get('/streams/data/csv').expect(200);
    expect(rowsOfDownload(all.text).rows).toEqual(widen(rowsOfFiles(dir, ordered), header));
  });

  it('streams a file larger than its chunks byte for byte, multi-byte characters and quoted newlines across the chunk edges', async () => {
    const w = world();
    const batch = Array.from({ length: 500 }, (_, i) => ({ id: i, text: `é ünïcödé ${'ж'.repeat(i % 37)}`, note: `line\n${i}, "q"` }));
    for (let k = 0; k < 8; k++) await request(w.app).post('/data?ack=durable').send(batch).expect(201);
    const file = readFileSync(join(worlds.dir, 'data.csv'), 'utf8');
    expect(Buffer.byteLength(file)).toBeGreaterThan(200 * 1024);
    const res = await request(w.app).get('/streams/data/csv').expect(200);
    expect(res.text).toBe(file);
  });
});

describe('a file whose header passes 300 KB', () => {
  it('is listed with its columns and row count, and downloaded byte for byte', async () => {
    const w = world();
    // 820 keys of 128 characters, mostly three UTF-8 bytes each: a header of over 300 KB, under MAX_COLUMNS.
    const keys = Array.from({ length: 820 }, (_, i) => `${'€'.repeat(124)}${String(i).padStart(4, '0')}`);
    const reading = (n: number) => Object.fromEntries(keys.map((key, i) => [key, i === 0 ? `row ${n}` : i]));
    await request(w.app).post('/data?ack=durable').send([reading(1), reading(2)]).expect(201);
    await request(w.app).post('/data?ack=durable').send(reading(3)).expect(201);
    const file = readFileSync(join(worlds.dir, 'data.csv'), 'utf8');
    expect(Buffer.byteLength(file.slice(0, file.indexOf('\n')))).toBeGreaterThan(300 * 1024);

    const listing = (await request(w.app).get('/streams').expect(200)).body as { streams: Array<{ columns: string[]; files: Array<{ rows: number | null }> }> };
    expect(listing.streams[0]?.columns).toEqual(['received_at', ...keys]);
    expect(listing.streams[0]?.files).toMatchObject([{ rows: 3 }]);
    const res = await request(w.app).get('/streams/data/csv').expect(200);
    expect(res.text).toBe(file);
    expect(rowsOfDownload(res.text).rows.map((r) => r[keys[0] as string])).toEqual(['row 1', 'row 2', 'row 3']);
  });

  it('but a file with no line end in its first 16 MiB fails the listing and the download loudly, never as a stream with no rows', async () => {
    const w = world();
    const path = join(worlds.dir, 'data.csv');
    writeFileSync(path, 'received_at,');
    truncateSync(path, 17 * 1024 * 1024); // a hole of zero bytes: no line end
    for (const url of ['/streams', '/streams/data/csv']) {
      const res = await request(w.app).get(url);
      expect(res.status, url).toBe(500);
      expect(res.body, url).toEqual({ error: 'internal error', code: 'INTERNAL' });
    }
    expect(w.lines.filter((l) => l.msg === 'request failed')).toHaveLength(2);
  });
});

describe('GET /streams', () => {
  it('lists each stream\'s files with sizes, row counts, columns and when it last received', async () => {
    const { w } = await writeFourDays({ CSV_ROTATE: 'daily' });
    const dir = worlds.dir;
    // Things in DATA_DIR that are not the stream's files: not listed, not followed.
    writeFileSync(join(dir, 'notes.txt'), 'x');
    writeFileSync(join(dir, 'data-2026-11-20.csv.partial-20261120T000000Z'), 'x');
    writeFileSync(join(dir, 'data-2026-02-30.csv'), 'received_at\n');
    mkdirSync(join(dir, 'data-2026-11-19.csv'));
    symlinkSync('/etc/passwd', join(dir, 'data-2026-11-18.csv'));

    const res = await request(w.app).get('/streams').expect(200);
    const listing = res.body as { streams: Array<{ name: string; columns: string[]; last_received: string | null; bytes: number; csv: string; files: Array<{ name: string; bytes: number; rows: number | null; day: string | null }> }> };
    expect(listing.streams.map((s) => s.name)).toEqual(['data', 'data2', 'data3', 'data4']);
    const data = listing.streams[0];
    const expectedFiles = listFiles(dir)
      .map((f) => matchStreamFile('data', f))
      .filter((f) => f !== null && statSync(join(dir, f.name), { throwIfNoEntry: false })?.isFile() === true && !f.name.startsWith('data-2026-11-18'))
      .sort((a, b) => compareStreamFiles(a as never, b as never))
      .map((f) => f?.name);
    expect(data?.files.map((f) => f.name)).toEqual(expectedFiles);
    expect(data?.files.map((f) => f.name)).not.toContain('data-2026-11-18.csv');
    for (const file of data?.files ?? []) {
      expect(file.bytes, file.name).toBe(statSync(join(dir, file.name)).size);
      expect(file.rows, file.name).toBe(Math.max(0, readCsv(join(dir, file.name)).length - 1));
    }
    expect(data?.files.find((f) => f.name === `data-${DAYS[3]}.csv`)).toMatchObject({ day: DAYS[3], rows: 1 });
    expect(data?.columns).toEqual(['received_at', 'id', 't', 'hum']);
    expect(data?.last_received).toBe(new Date(at(DAYS[3], 12)).toISOString());
    expect(data?.bytes).toBe(data?.files.reduce((sum, f) => sum + f.bytes, 0));
    expect(data?.csv).toBe('/streams/data/csv');
    expect(listing.streams[1]).toEqual({ name: 'data2', columns: [], last_received: null, bytes: 0, csv: '/streams/data2/csv', files: [] });
  });

  it('counts rows with quoted newlines right', async () => {
    const path = join(worlds.dir, 'x.csv');
    writeFileSync(path, 'received_at,a\n1,"x\ny"\n2,"say ""hi""\n"\n3,cut');
    expect(await countRows(path)).toBe(2);
  });
});

describe('refusals', () => {
  /** A GET with the path sent exactly as written (fetch and supertest would normalise `..` and `%2e%2e`). */
  async function rawGet(w: World, path: string): Promise<{ status: number; body: string }> {
    const { port } = await worlds.listen(w);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it.each([
    '/streams/../csv',
    '/streams/%2e%2e/csv',
    '/streams/%2E%2E/csv',
    '/streams/..%2F..%2Fetc%2Fpasswd/csv',
    '/streams/..%2fdata/csv',
    '/streams/data%2F..%2Fdata/csv',
    '/streams/data%00/csv',
    '/streams/DATA/csv',
    '/streams/nope/csv',
    '/streams/data.csv/csv',
    '/streams/data/..%2F..%2Fetc%2Fpasswd',
    '/streams/data/csv/..',
  ])('%s is refused with a JSON 404', async (path) => {
    const w = world();
    await request(w.app).post('/data?ack=durable').send({ secret: 'in data.csv' }).expect(201);
    writeFileSync(join(worlds.dir, '..', 'outside.csv'), 'received_at\n');
    const res = await rawGet(w, path);
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'NOT_FOUND' });
    expect(res.body).not.toContain('in data.csv');
  });

  it('refuses a bad percent-encoding with a JSON 400', async () => {
    const res = await rawGet(world(), '/streams/%zz/csv');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it.each([
    ['from=2026-13-01', 'from must be a day as YYYY-MM-DD, got "2026-13-01"'],
    ['from=2026-02-30', 'from must be a day as YYYY-MM-DD, got "2026-02-30"'],
    ['to=yesterday', 'to must be a day as YYYY-MM-DD, got "yesterday"'],
    ['from=2026-11-2', 'from must be a day as YYYY-MM-DD, got "2026-11-2"'],
    ['from=2026-11-20&from=2026-11-21', 'from must be a day as YYYY-MM-DD, got ["2026-11-20","2026-11-21"]'],
    ['from=2026-11-22&to=2026-11-21', 'from (2026-11-22) is after to (2026-11-21)'],
  ])('?%s is a 400', async (query, error) => {
    const res = await request(world().app).get(`/streams/data/csv?${query}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, code: 'BAD_QUERY' });
  });

  it('guards both with READ_TOKEN; the download also takes ?token=, which stays out of the log', async () => {
    const w = world({ env: { READ_TOKEN } });
    await request(w.app).post('/data?ack=durable').send({ t: 1 }).expect(201);
    expect((await request(w.app).get('/streams')).status).toBe(401);
    expect((await request(w.app).get('/streams').set('authorization', 'Bearer nope')).status).toBe(401);
    expect((await request(w.app).get('/streams').set('authorization', `Bearer ${READ_TOKEN}`)).status).toBe(200);
    expect((await request(w.app).get('/streams/data/csv')).status).toBe(401);
    expect((await request(w.app).get('/streams/data/csv?token=nope')).status).toBe(401);
    // Unknown streams are not revealed before the token is checked.
    expect((await request(w.app).get('/streams/nope/csv')).status).toBe(401);
    const byQuery = await request(w.app).get(`/streams/data/csv?token=${READ_TOKEN}`);
    expect(byQuery.status).toBe(200);
    expect(records(byQuery.text).map((r) => r.slice(1))).toEqual([['t'], ['1']]);
    expect((await request(w.app).get('/streams/data/csv').set('authorization', `Bearer ${READ_TOKEN}`)).status).toBe(200);
    expect(JSON.stringify(w.lines)).not.toContain(READ_TOKEN);
    expect(w.lines.find((l) => l.msg === 'request' && l.status === 200 && l.path === '/streams/data/csv')).toBeDefined();
  });

  it('labels the download route in metrics by its pattern, not by the stream', async () => {
    const w = world();
    await request(w.app).get('/streams/data/csv').expect(200);
    await request(w.app).get('/streams/nope/csv').expect(404);
    const text = (await request(w.app).get('/metrics')).text;
    expect(text).toContain('http_requests_total{method="GET",route="/streams/:name/csv",status="200"} 1');
    expect(text).toContain('http_requests_total{method="GET",route="/streams/:name/csv",status="404"} 1');
  });

  it('answers 405 to other methods', async () => {
    const w = world();
    expect((await request(w.app).post('/streams')).status).toBe(405);
    expect((await request(w.app).delete('/streams/data/csv')).status).toBe(405);
  });
});

describe('stream file names', () => {
  it('matches only the stream\'s own current files and archives', () => {
    expect(matchStreamFile('data', 'data.csv')).toEqual({ name: 'data.csv', day: null, archivedAt: null, attempt: 0, compressed: false });
    expect(matchStreamFile('data', 'data.20261123T101500Z-2.csv')).toEqual({ name: 'data.20261123T101500Z-2.csv', day: null, archivedAt: '20261123T101500Z', attempt: 2, compressed: false });
    expect(matchStreamFile('data', 'data-2026-11-23.20261123T101500Z.csv')).toMatchObject({ day: '2026-11-23', archivedAt: '20261123T101500Z' });
    for (const name of ['data2.csv', 'data-x.csv', 'data.csv.lock', 'data.csv.partial-20261123T101500Z', 'data-2026-02-30.csv', '../data.csv', 'data/../data.csv', 'data.CSV', 'xdata.csv', 'data.csv.gz.tmp', 'data.gz', 'data.csv.gzip']) {
      expect(matchStreamFile('data', name), name).toBeNull();
    }
    expect(matchStreamFile('my-stream', 'my-stream-2026-11-23.csv')).toMatchObject({ day: '2026-11-23' });
    expect(isCalendarDay('2024-02-29')).toBe(true);
    expect(isCalendarDay('2026-02-29')).toBe(false);
  });

  it('orders archives before the file they came from, plain files before day files, days in order', () => {
    const names = ['data-2026-11-21.csv', 'data.csv', 'data-2026-11-20.csv', 'data-2026-11-21.20261121T020000Z-1.csv', 'data.20261101T000000Z.csv', 'data-2026-11-21.20261121T020000Z.csv', 'data-2026-11-21.20261121T010000Z.csv'];
    const sorted = names.map((n) => matchStreamFile('data', n)).filter((f) => f !== null).sort(compareStreamFiles).map((f) => f.name);
    expect(sorted).toEqual([
      'data.20261101T000000Z.csv',
      'data.csv',
      'data-2026-11-20.csv',
      'data-2026-11-21.20261121T010000Z.csv',
      'data-2026-11-21.20261121T020000Z.csv',
      'data-2026-11-21.20261121T020000Z-1.csv',
      'data-2026-11-21.csv',
    ]);
  });
});
