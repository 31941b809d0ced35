/**
 * Several CSV files of one stream as one CSV: one header, the union of the
 * files' columns (`received_at` first, then first-seen order: an archive and
 * the wider file that followed it differ), each row's cells moved under it,
 * and only rows whose `received_at` day is in the range. Streamed a chunk at
 * a time, never a whole file in memory (a row at most).
 */
import { csvChunks } from './compressed.js';
import { RECEIVED_AT, type RowScan, encodeLine, parseRecord, scanRowEnds } from './csv.js';

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

/** The CSV reading functions the export runs: a seam for tests that count the bytes each one looks at. */
export interface CsvReading {
  readonly scanRowEnds: typeof scanRowEnds;
  readonly parseRecord: typeof parseRecord;
}

const CSV_READING: CsvReading = { scanRowEnds, parseRecord };

/**
 * The CSV text: `columns` as the header, then the rows of each file in turn.
 * A file that has gone (renamed by an archive-and-widen since it was listed)
 * is skipped (one compressed since is read from its `.gz`); a record not yet ended by `\n` (a write under way) is left out.
 *
 * Linear in the bytes whatever the row size: each chunk is scanned once for
 * row ends (the scan keeps its quote state across chunks), and a record is
 * parsed once, when its end has arrived. Parsing the growing text again at each
 * 64 KiB chunk, as this once did, looked at each byte of 1 MB rows ~9 times.
 */
export async function* exportCsv(
  paths: readonly string[],
  columns: readonly string[],
  range: DayRange,
  reading: CsvReading = CSV_READING,
): AsyncGenerator<string> {
  const index = new Map(columns.map((column, i) => [column, i]));
  const filtered = range.from !== undefined || range.to !== undefined;
  yield encodeLine(columns);
  const listed = new Set(paths);
  for (const path of paths) {
    let header: string[] | undefined;
    let target: number[] = [];
    let dateAt = -1;
    let identity = false;
    const scan: RowScan = { quoted: false, rows: 0, end: 0 };
    let position = 0;
    /** The bytes of the record under way, not yet ended by a `\n`. */
    let pending: Buffer[] = [];
    let out = '';
    try {
      // A file compressed since the listing is read from its .gz, unless that .gz is listed too (another file then).
      for await (const chunk of csvChunks(path, CHUNK_BYTES, 0, !listed.has(`${path}.gz`))) {
        const ended = scan.end;
        reading.scanRowEnds(scan, chunk, chunk.length, position);
        position += chunk.length;
        if (scan.end === ended) {
          pending.push(chunk);
          continue;
        }
        // Whole records only: they end at a `\n`, so no UTF-8 sequence is cut.
        const cut = chunk.length - (position - scan.end);
        const text = Buffer.concat([...pending, chunk.subarray(0, cut)]).toString('utf8');
        pending = cut < chunk.length ? [chunk.subarray(cut)] : [];
        for (let offset = 0; offset < text.length; ) {
          const record = reading.parseRecord(text, offset);
          // The scan found this record's end, so the parser must too.
          if (record === null) throw new Error(`${path}: a record the row scan ended at byte ${scan.end} does not parse`);
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
