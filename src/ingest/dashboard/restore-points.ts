/**
 * At start-up, puts each stream's recent rows back into the dashboard's
 * memory, so its charts survive a restart, and each stream's newest row's
 * time into the stream activity, so that "last received" survives it too:
 * in `/streams`, `/history`, `/metrics` and the inactivity monitor alike. Reads the tails of the stream's
 * files, newest first, until it has gone back past the chart's window or has
 * read `maxBytesPerStream` (bounded time and memory, however large the files).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { plainSizeOf } from '../../storage/compressed.js';
import { RECEIVED_AT, unguardCell } from '../../storage/csv.js';
import { listStreamFiles } from '../../storage/stream-files.js';
import type { StreamActivity } from '../../server/stream-activity.js';
import { type LivePoints, WINDOW_MS } from './live-points.js';
import { type OpenFile, TAIL_BYTES, readTail } from '../../storage/csv.js';

/** The largest `.gz` (in CSV bytes) whose tail start-up reads. */
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

export interface RestoreOptions {
  readonly dataDir: string;
  readonly streams: readonly string[];
  readonly live: LivePoints;
  readonly activity: StreamActivity;
  readonly now: () => number;
  readonly maxBytesPerStream?: number;
  readonly open?: OpenFile;
}

/** What start-up restored, and the files it could not read (their charts start empty; start-up goes on). */
export interface Restored {
  readonly rows: number;
  readonly bytes: number;
  readonly unreadable: Array<{ readonly file: string; readonly error: string }>;
}

/** Restores every stream; returns the rows put back and the bytes read. */
export async function restoreRecentPoints(options: RestoreOptions): Promise<Restored> {
  const { dataDir, streams, live, now } = options;
  const maxBytes = options.maxBytesPerStream ?? TAIL_BYTES;
  const since = now() - WINDOW_MS;
  let rows = 0;
  let bytes = 0;
  const unreadable: Array<{ file: string; error: string }> = [];
  for (const stream of streams) {
    const tails: Array<{ header: string[]; rows: string[][] }> = [];
    let budget = maxBytes;
    for (const file of (await listStreamFiles(dataDir, stream)).reverse()) {
      if (budget <= 0) break;
      let tail: Awaited<ReturnType<typeof readTail>>;
      try {
        // A .gz's tail comes only by inflating all of it: a big one is left out, so start-up stays short.
        if (file.compressed && (await plainSizeOf(join(dataDir, file.name), (await stat(join(dataDir, file.name))).size)) > MAX_INFLATED_BYTES) break;
        tail = await readTail(join(dataDir, file.name), budget, options.open);
      } catch (error) {
        // Say so, but never let a chart keep the server from starting: the file is no less there.
        unreadable.push({ file: file.name, error: (error as Error).message });
        break;
      }
      if (tail === null) continue;
      budget -= tail.bytesRead;
      bytes += tail.bytesRead;
      tails.unshift(tail);
      const oldest = tail.rows[0]?.[0];
      if (tail.cut || (oldest !== undefined && Date.parse(oldest) < since)) break;
    }
    let newest: number | undefined;
    for (const { header, rows: records } of tails) {
      const at = header.indexOf(RECEIVED_AT);
      if (at < 0) continue; // a Flask10X file's archive: its rows have no time
      const names = header.map(unguardCell);
      for (const record of records) {
        const receivedAt = Date.parse(record[at] as string);
        if (Number.isNaN(receivedAt)) continue;
        // An empty cell is a key the reading did not have, or a null: left out, as on the card.
        const columns: string[] = [];
        const cells: string[] = [];
        record.forEach((cell, i) => {
          if (i === at || cell === '') return;
          columns.push(names[i] as string);
          cells.push(unguardCell(cell));
        });
        live.record(stream, [{ columns, cells }], receivedAt);
        newest = Math.max(newest ?? receivedAt, receivedAt);
        rows++;
      }
    }
    if (newest !== undefined) options.activity.record(stream, newest);
  }
  return { rows, bytes, unreadable };
}
