/**
 * What the NATS end-to-end tests share: the environments of an ingest server
 * that forwards and of a collector, a load of readings with unique ids, and
 * the comparison of the edge's files with the central ones, row by row.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { pool, postJson } from './http-client.js';
import { serverEnv } from './server-process.js';
import { waitFor } from './wait.js';

export const SITE = 'edge1';

/** The environment of an ingest server at SITE that forwards to `natsUrl`, with its data and logs in `root` (`root/data`, `root/logs`). */
export function ingestEnv(root: string, natsUrl: string, env: Record<string, string> = {}): Record<string, string> {
  return serverEnv(root, { NATS_URL: natsUrl, SITE_ID: SITE, STREAMS: 's1,s2,s3,s4', ...env });
}

/** The environment of a collector (run it with entry COLLECT) reading from `natsUrl`, its central files and logs in `root`. */
export function collectorEnv(root: string, natsUrl: string, env: Record<string, string> = {}): Record<string, string> {
  return serverEnv(root, { NATS_URL: natsUrl, ...env });
}

/** One row: its received_at and its non-empty cells (an empty cell and a missing column read alike). */
export type RowMap = Record<string, string>;

/** Every row of a stream's files in `dir` (archives and current), each file in creation order of its name. */
export function rowsOf(dir: string, stream: string): RowMap[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files = names.filter((name) => name.endsWith('.csv') && (name === `${stream}.csv` || name.startsWith(`${stream}.`)));
  // Archives hold older rows than the current file; `data.<time>.csv` is older than `data.<time>-1.csv`.
  const order = (name: string): [string, number] => {
    if (name === `${stream}.csv`) return ['~', 0];
    const match = /\.(\d{8}T\d{6}Z)(?:-(\d+))?\.csv$/.exec(name);
    return [match?.[1] ?? name, Number(match?.[2] ?? 0)];
  };
  files.sort((a, b) => {
    const [timeA, nA] = order(a);
    const [timeB, nB] = order(b);
    return timeA < timeB ? -1 : timeA > timeB ? 1 : nA - nB;
  });
  const rows: RowMap[] = [];
  for (const file of files) {
    const records = parse(readFileSync(join(dir, file), 'utf8'), { relax_column_count: false });
    const [header, ...body] = records;
    for (const record of body) {
      const row: RowMap = {};
      header?.forEach((column, i) => {
        if (record[i] !== '') row[column] = record[i] as string;
      });
      rows.push(row);
    }
  }
  return rows;
}

/** A row as one comparable string: its cells in column-name order. */
export function rowKey(row: RowMap): string {
  return JSON.stringify(Object.keys(row).sort().map((key) => [key, row[key]]));
}

/** Ids (the `id` cell) that occur more than once. */
export function duplicateIds(rows: readonly RowMap[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const row of rows) {
    const id = row.id as string;
    if (seen.has(id)) twice.add(id);
    seen.add(id);
  }
  return [...twice];
}

/** Prometheus text → the sum of a metric's samples (all label sets). */
export async function metricSum(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * Posts `count` readings over the streams with `concurrency` in flight.
 * Each has a unique `id`; every `widenEvery`-th brings a new key (archive-and-widen).
 * Returns the ids answered 2xx; a refused or failed post is not counted.
 */
export async function postLoad(
  url: () => string,
  count: number,
  { concurrency = 50, streams = ['s1', 's2', 's3', 's4'], prefix = 'r', widenEvery = 0, retryRefused = false } = {},
): Promise<Set<string>> {
  const acked = new Set<string>();
  await pool(count, concurrency, async (i) => {
    // Like a sensor whose server restarts: a post that fails is sent again (as a new reading: the
    // first may have been written before the kill, unacknowledged).
    for (let attempt = 0; attempt < (retryRefused ? 400 : 1); attempt++) {
      const id = attempt === 0 ? `${prefix}${i}` : `${prefix}${i}.${attempt}`;
      const reading: Record<string, unknown> = { id, t: 20 + (i % 50) / 10, note: i % 7 === 0 ? 'comma, "quoted"\nline' : `n${i}` };
      if (widenEvery > 0 && i % widenEvery === widenEvery - 1) reading[`extra${Math.floor(i / widenEvery)}`] = i;
      try {
        const answer = await postJson(`${url()}/${streams[i % streams.length]}`, reading);
        if (answer.status >= 200 && answer.status < 300) acked.add(id);
        return;
      } catch {
        // The server was killed under us: not acknowledged.
        if (retryRefused) await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  });
  return acked;
}

/** Waits until the central files hold `expected` rows of every stream (or throws with what is missing). */
export async function waitForCentral(centralDir: string, expectedIds: ReadonlySet<string>, streams: readonly string[], timeoutMs = 60_000): Promise<void> {
  await waitFor(
    () => {
      const ids = new Set(streams.flatMap((stream) => rowsOf(join(centralDir, SITE), stream).map((row) => row.id as string)));
      for (const id of expectedIds) if (!ids.has(id)) return false;
      return true;
    },
    `${expectedIds.size} rows in the central files`,
    timeoutMs,
  );
}

export const STREAMS = ['s1', 's2', 's3', 's4'];
