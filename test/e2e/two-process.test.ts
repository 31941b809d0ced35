/**
 * Two built server processes on one DATA_DIR (SPEC sections 4, 5, 7): the
 * per-file proper-lockfile lock must keep their rows apart, write the header
 * once, and archive-and-widen without putting a value under a wrong column.
 */
import * as nodeFs from 'node:fs';
import { existsSync, readFileSync, readdirSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it, onTestFinished } from 'vitest';
import { csvNameOfState, readFileState, stateDirOf } from '../../src/storage/file-state.js';
import { pool, postJson } from '../support/http-client.js';
import { jsonLines } from '../support/logs.js';
import { type ServerProcess, useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';

const POSTS_PER_SERVER = 1500;
const CONCURRENCY = 16;
/** In the archive case, requests per new key. */
const KEY_EVERY = 10;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ARCHIVE = /^data\.(\d{8}T\d{6}Z)(?:-(\d+))?\.csv$/;

const servers = useServers();

type Reading = Record<string, string | number>;

/** Starts two servers on one DATA_DIR (each with its own LOG_DIR). */
async function startPair(): Promise<{ dataDir: string; a: ServerProcess; b: ServerProcess }> {
  const dir = testDir('sensor-ingest-two-');
  const dataDir = join(dir, 'data');
  const [a, b] = await Promise.all(['a', 'b'].map((tag) => servers.start({ DATA_DIR: dataDir, LOG_DIR: join(dir, `logs-${tag}`) })));
  return { dataDir, a: a as ServerProcess, b: b as ServerProcess };
}

/**
 * POSTs `POSTS_PER_SERVER` requests to `server`: every third a batch of 2–5
 * readings, the rest single readings. Returns every reading sent, by id, and
 * the ids of the 2xx-acknowledged ones, and the statuses seen.
 */
async function load(
  server: ServerProcess,
  makeReading: (request: number, part: number) => Reading,
  posts = POSTS_PER_SERVER,
): Promise<{ sent: Map<string, Reading>; acked: Set<string>; statuses: number[] }> {
  const sent = new Map<string, Reading>();
  const acked = new Set<string>();
  const statuses = await pool(posts, CONCURRENCY, async (request) => {
    const size = request % 3 === 0 ? 2 + (request % 4) : 1;
    const readings = Array.from({ length: size }, (_, part) => makeReading(request, part));
    for (const reading of readings) sent.set(reading.id as string, reading);
    const response = await postJson(`${server.url}/data`, size === 1 ? readings[0] : readings);
    if (response.status >= 200 && response.status < 300) {
      expect(response.body).toEqual({ status: 'queued', rows: size });
      for (const reading of readings) acked.add(reading.id as string);
    }
    return response.status;
  });
  return { sent, acked, statuses };
}

/** Stops a server the way systemd does and expects a clean exit. */
async function stop(server: ServerProcess): Promise<void> {
  server.child.kill('SIGTERM');
  const exit = await server.exited;
  expect(exit, server.output().slice(-2000)).toEqual({ code: 0, signal: null });
}

/**
 * Parses a CSV file strictly (no relaxed column counts or quotes, no skipped
 * lines) and checks its shape: the header is the first line and appears once,
 * every row has the header's column count and an ISO `received_at`.
 */
function readStrict(path: string): { header: string[]; rows: Array<Record<string, string>> } {
  const text = readFileSync(path, 'utf8');
  const records = parse(text, {
    relax_column_count: false,
    relax_quotes: false,
    skip_empty_lines: false,
    skip_records_with_error: false,
  });
  expect(records.length, `${path} has a header`).toBeGreaterThan(0);
  const header = records[0] as string[];
  expect(header[0]).toBe('received_at');
  expect(new Set(header).size, `${path} header has no repeated column`).toBe(header.length);
  expect(text.startsWith(`${header.join(',')}\n`), `${path} starts with its header line`).toBe(true);
  expect(text.endsWith('\n')).toBe(true);
  const rows = records.slice(1).map((record, index) => {
    expect(record, `${path} row ${index + 1}`).toHaveLength(header.length);
    expect(record[0], `${path} row ${index + 1} is a data row, not a second header`).toMatch(ISO_MS);
    return Object.fromEntries(header.map((column, i) => [column, record[i] as string]));
  });
  return { header, rows };
}

/** Every id once across `rows`, and exactly the acknowledged ones. */
function expectExactlyAcked(ids: string[], acked: Set<string>): void {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  const repeated = [...counts].filter(([, count]) => count > 1).map(([id]) => id);
  console.log(`two processes: rows acknowledged ${acked.size}, rows found ${ids.length}, duplicates ${repeated.length}`);
  expect(repeated, 'ids written more than once').toEqual([]);
  const missing = [...acked].filter((id) => !counts.has(id));
  expect(missing, 'acknowledged ids not on disk').toEqual([]);
  const extra = ids.filter((id) => !acked.has(id));
  expect(extra, 'ids on disk that were never acknowledged').toEqual([]);
}

/** Rows of one request are contiguous and in order (SPEC section 4). */
function expectBatchesContiguous(rows: Array<Record<string, string>>): void {
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as Record<string, string>;
    const part = Number(row.part);
    if (part === 0) continue;
    const previous = rows[i - 1];
    expect(previous?.id, `row before ${row.id}`).toBe(`${row.src}-${row.request}-${part - 1}`);
  }
}

/** Stored log lines of a server, skipping anything that is not a whole JSON line. */
function logLines(server: ServerProcess): Array<Record<string, unknown>> {
  return jsonLines(server.output());
}

/** Archives in the order they were made: by timestamp, then by `-n` suffix. */
function archivesInOrder(dataDir: string): string[] {
  const key = (name: string): [string, number] => {
    const match = ARCHIVE.exec(name) as RegExpExecArray;
    return [match[1] as string, Number(match[2] ?? 0)];
  };
  return readdirSync(dataDir)
    .filter((name) => ARCHIVE.test(name))
    .sort((x, y) => {
      const [tx, nx] = key(x);
      const [ty, ny] = key(y);
      return tx === ty ? nx - ny : tx < ty ? -1 : 1;
    });
}

describe('two server processes on one DATA_DIR', () => {
  it('runs two server processes on one DATA_DIR under concurrent load: one header, every row well formed, rows = total 2xx', async () => {
    const { dataDir, a, b } = await startPair();
    // SPEC section 9: the lock is proper-lockfile's `data.csv.lock` directory; see it come and go.
    const seen = new Set<string>();
    const watcher = watch(dataDir, (_event, name) => {
      if (name !== null) seen.add(name.toString());
    });
    onTestFinished(() => watcher.close());
    const reading = (src: string) => (request: number, part: number): Reading => ({
      id: `${src}-${request}-${part}`,
      src,
      request,
      part,
      temp: 20 + (request % 100) / 10,
      // Commas, quotes and a newline make the RFC 4180 quoting matter.
      note: request % 7 === 0 ? `say "hi", ${src}\nline two` : `plain ${src}${request}`,
    });
    const [loadA, loadB] = await Promise.all([load(a, reading('a')), load(b, reading('b'))]);
    // 1,500 requests are 2,750 rows per server: even a stalled writer cannot fill a 5,000-row queue.
    expect(loadA.statuses.filter((status) => status !== 202)).toEqual([]);
    expect(loadB.statuses.filter((status) => status !== 202)).toEqual([]);

    await Promise.all([stop(a), stop(b)]);
    watcher.close();

    expect(seen.has('data.csv.lock'), 'the writers took data.csv.lock').toBe(true);
    expect(readdirSync(dataDir).sort(), 'one file, no archive, no lock or partial left behind').toEqual(['.sensor-ingest', 'data.csv']);
    expect(fileStatesOf(dataDir), 'one file state, vouching for the whole file').toEqual([['data.csv', statSync(join(dataDir, 'data.csv')).size]]);
    const { header, rows } = readStrict(join(dataDir, 'data.csv'));
    expect(header).toEqual(['received_at', 'id', 'src', 'request', 'part', 'temp', 'note']);
    const acked = new Set([...loadA.acked, ...loadB.acked]);
    expect(rows).toHaveLength(acked.size);
    expectExactlyAcked(
      rows.map((row) => row.id as string),
      acked,
    );
    const sent = new Map([...loadA.sent, ...loadB.sent]);
    for (const row of rows) {
      const original = sent.get(row.id as string) as Reading;
      const { received_at: _, ...cells } = row;
      expect(cells).toEqual(Object.fromEntries(Object.entries(original).map(([key, value]) => [key, String(value)])));
    }
    expectBatchesContiguous(rows);
    // The two processes really did write at the same time: their rows interleave.
    const switches = rows.filter((row, i) => i > 0 && row.src !== rows[i - 1]?.src).length;
    expect(switches).toBeGreaterThan(1);
  });

  it('archives and widens under contention when the two servers send different new keys: every acknowledged id once, no value under a wrong column', async () => {
    const { dataDir, a, b } = await startPair();
    // Every 10 requests a server brings a key the file has not seen: `ka0`, `ka1`, … and `kb0`, `kb1`, …
    // (often enough that the two processes archive at the same moment: without the lock
    // this breaks within a run, with a second header or a row under a narrower header).
    const keyOf = (src: string, request: number): string => `k${src}${Math.floor(request / KEY_EVERY)}`;
    const reading = (src: string) => (request: number, part: number): Reading => {
      const id = `${src}-${request}-${part}`;
      return { id, src, request, part, [keyOf(src, request)]: id };
    };
    const [loadA, loadB] = await Promise.all([load(a, reading('a')), load(b, reading('b'))]);
    expect(loadA.statuses.filter((status) => status !== 202)).toEqual([]);
    expect(loadB.statuses.filter((status) => status !== 202)).toEqual([]);

    await Promise.all([stop(a), stop(b)]);

    const archives = archivesInOrder(dataDir);
    const files = [...archives, 'data.csv'];
    expect(readdirSync(dataDir).sort(), 'only data.csv and its archives, no lock or partial left behind').toEqual(
      ['.sensor-ingest', ...files].sort(),
    );
    // Section 10: each file's state moved with it through every archive rename, under the lock.
    const states = fileStatesOf(dataDir);
    expect(states.map(([name]) => name).sort(), 'a state for every file').toEqual([...files].sort());
    for (const [name, synced] of states) expect(synced, `${name} vouched for whole`).toBe(statSync(join(dataDir, name)).size);
    const fileIds = files.map((name) => readFileState(nodeFs, join(dataDir, name))?.id);
    expect(new Set(fileIds).size, 'every file its own id').toBe(files.length);
    // Each server brings 150 new keys; a group commit may bring several at once, but not all of them.
    expect(archives.length).toBeGreaterThanOrEqual(10);

    const keyColumns = new Set(Array.from({ length: POSTS_PER_SERVER / KEY_EVERY }, (_, g) => [`ka${g}`, `kb${g}`]).flat());
    const ids: string[] = [];
    let previousHeader: string[] = [];
    for (const file of files) {
      const { header, rows } = readStrict(join(dataDir, file));
      // SPEC section 4: the widened header keeps the old columns first.
      expect(header.slice(0, previousHeader.length), `${file} widens the header before it`).toEqual(previousHeader);
      expect(header.length, `${file} is wider than the file it replaced`).toBeGreaterThan(previousHeader.length);
      previousHeader = header;
      for (const row of rows) {
        const id = row.id as string;
        ids.push(id);
        const [src, request] = id.split('-') as [string, string];
        expect(row.src).toBe(src);
        expect(row.request).toBe(request);
        const filled = header.filter((column) => keyColumns.has(column) && row[column] !== '');
        expect(filled, `${file}: the only key cell of ${id}`).toEqual([keyOf(src, Number(request))]);
        expect(row[keyOf(src, Number(request))], `${file}: ${id} under its own key column`).toBe(id);
      }
      expectBatchesContiguous(rows);
    }
    expect(previousHeader.filter((column) => keyColumns.has(column)).sort()).toEqual([...keyColumns].sort());
    expectExactlyAcked(ids, new Set([...loadA.acked, ...loadB.acked]));

    // Every archive was announced by the process that made it (SPEC section 9 words).
    const changes = [...logLines(a), ...logLines(b)].filter((line) => line.msg === 'csv schema changed');
    expect(changes.map((line) => line.archive).sort()).toEqual([...archives].sort());
    expect(changes.every((line) => line.level === 40)).toBe(true);
    expect(existsSync(join(dataDir, 'data.csv.lock'))).toBe(false);
  });

  // Each process holds the lock only for one batch's write and fsync (milliseconds).
  // Running into a peer's hold is ordinary in a PM2 cluster, not a write fault: it
  // should be waited out, not logged as ERROR `write failed` ELOCKED, and it must never
  // stall a writer (WRITE_RETRIES consecutive misses) and turn /readyz 503 for
  // WRITE_BACKOFF_MAX_SEC while nothing is wrong.
  it("waits out a peer's brief hold of the lock: no ELOCKED write failure, no stall, /readyz stays 200", async () => {
    const { dataDir, a, b } = await startPair();
    const reading = (src: string) => (request: number, part: number): Reading => ({ id: `${src}-${request}-${part}`, src, request, part });
    const notReady: string[] = [];
    let loading = true;
    const probe = async (server: ServerProcess, name: string): Promise<void> => {
      while (loading) {
        const response = await fetch(`${server.url}/readyz`);
        if (response.status !== 200) notReady.push(`${name}: ${response.status} ${await response.text()}`);
        else await response.body?.cancel();
      }
    };
    const probes = [probe(a, 'a'), probe(b, 'b')];
    const [loadA, loadB] = await Promise.all([load(a, reading('a'), 1000), load(b, reading('b'), 1000)]);
    loading = false;
    await Promise.all(probes);
    await Promise.all([stop(a), stop(b)]);

    const { rows } = readStrict(join(dataDir, 'data.csv'));
    expectExactlyAcked(
      rows.map((row) => row.id as string),
      new Set([...loadA.acked, ...loadB.acked]),
    );
    const faults = [...logLines(a), ...logLines(b)]
      .filter((line) => line.msg === 'write failed' || line.msg === 'writer stalled')
      .map((line) => `${String(line.msg)} ${JSON.stringify(line.code ?? '')} pid ${String(line.pid)}`);
    expect(faults, 'lock contention between two healthy servers reported as write faults').toEqual([]);
    expect(notReady, '/readyz answers while both servers are healthy').toEqual([]);
  });
});

/** Each CSV file's state (section 10) as [file name, synced length]. */
function fileStatesOf(dataDir: string): Array<[string, number]> {
  return readdirSync(stateDirOf(dataDir))
    .map(csvNameOfState)
    .filter((name): name is string => name !== null)
    .map((name) => [name, readFileState(nodeFs, join(dataDir, name))?.synced ?? -1] as [string, number]);
}
