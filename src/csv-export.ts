/**
 * Several CSV files of one stream as one CSV: one header, the union of the
 * files' columns (`received_at` first, then first-seen order: an archive and
 * the wider file that followed it differ), each row's cells moved under it,
 * and only rows whose `received_at` day is in the range. Streamed a chunk at
 * a time, never a whole file in memory.
 */
import { createReadStream } from 'node:fs';
import { RECEIVED_AT, encodeLine, parseRecord } from './csv.js';

/** Inclusive UTC days, `YYYY-MM-DD`; an open end when absent. */
export interface DayRange {
  readonly from?: string;
  readonly to?: string;
}

const CHUNK_BYTES = 64 * 1024;

export function inDayRange(day: string, { from, to }: DayRange): boolean {
  return (from === undefined || day >= from) && (to === undefined || day <= to);
}

/** `received_at`, then every other column in the order the headers first show it. */
export function unionColumns(headers: ReadonlyArray<readonly string[]>): string[] {
  const columns = [RECEIVED_AT];
  const seen = new Set(columns);
  for (const header of headers) {
    for (const column of header) {
      if (!seen.has(column)) {
        seen.add(column);
        columns.push(column);
      }
    }
  }
  return columns;
}

/**
 * The CSV text: `columns` as the header, then the rows of each file in turn.
 * A file that has gone (renamed by an archive-and-widen since it was listed)
 * is skipped; a record not yet ended by `\n` (a write under way) is left out.
 */
export async function* exportCsv(paths: readonly string[], columns: readonly string[], range: DayRange): AsyncGenerator<string> {
  const index = new Map(columns.map((column, i) => [column, i]));
  const filtered = range.from !== undefined || range.to !== undefined;
  yield encodeLine(columns);
  for (const path of paths) {
    let header: string[] | undefined;
    let target: number[] = [];
    let dateAt = -1;
    let identity = false;
    let text = '';
    let out = '';
    try {
      for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: CHUNK_BYTES }) as AsyncIterable<string>) {
        text += chunk;
        let offset = 0;
        for (let record = parseRecord(text, offset); record !== null; record = parseRecord(text, offset)) {
          offset = record.end;
          const fields = record.fields;
          if (header === undefined) {
            header = fields;
            // A column missing from `columns` (only if the file changed since its header was read) is dropped.
            target = header.map((column) => index.get(column) ?? -1);
            dateAt = header.indexOf(RECEIVED_AT);
            identity = header.length === columns.length && target.every((to, from) => to === from);
            continue;
          }
          if (fields.length !== header.length) continue;
          if (filtered && (dateAt < 0 || !inDayRange((fields[dateAt] as string).slice(0, 10), range))) continue;
          if (identity) {
            out += encodeLine(fields);
          } else {
            const cells = new Array<string>(columns.length).fill('');
            for (let j = 0; j < fields.length; j++) if ((target[j] as number) >= 0) cells[target[j] as number] = fields[j] as string;
            out += encodeLine(cells);
          }
        }
        text = text.slice(offset);
        if (out.length >= CHUNK_BYTES) {
          yield out;
          out = '';
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (out !== '') yield out;
  }
}
