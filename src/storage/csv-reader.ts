/**
 * Reading rows back out of a CSV file by byte offset, for the forwarder:
 * whole records only, each with the offset it starts at, never past the
 * length the caller allows (the part known fsynced).
 *
 * The bytes are parsed as latin1, one character a byte, so string indices
 * are byte offsets; quotes, commas and newlines are ASCII and cannot occur
 * inside a UTF-8 sequence, and each field is turned back into UTF-8 after.
 */
import type * as nodeFs from 'node:fs';
import { parseRecord } from './csv.js';

type ReadFs = Pick<typeof nodeFs, 'readSync'>;

export interface CsvRecord {
  /** Byte offset of the record's first byte. */
  readonly offset: number;
  readonly fields: string[];
}

const FIRST_READ_BYTES = 64 * 1024;
/** A row is at most MAX_REQUEST_BYTES and its quoting; past this, the file is not ours to read. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

function toUtf8(field: string): string {
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(field) ? Buffer.from(field, 'latin1').toString('utf8') : field;
}

/** The header record, or null if the file holds no whole first line yet. */
export function readHeaderRecord(fs: ReadFs, fd: number, limit: number): { fields: string[]; end: number } | null {
  const records = readRecords(fs, fd, 0, limit, 1);
  const first = records.records[0];
  return first === undefined ? null : { fields: first.fields, end: records.end };
}

/**
 * Up to `maxRecords` whole records starting at `from` (a record boundary),
 * none reaching past `limit`; `end` is just past the last one returned.
 */
export function readRecords(fs: ReadFs, fd: number, from: number, limit: number, maxRecords: number): { records: CsvRecord[]; end: number } {
  let want = Math.min(FIRST_READ_BYTES, limit - from);
  for (;;) {
    if (want <= 0) return { records: [], end: from };
    const buffer = Buffer.allocUnsafe(want);
    const read = fs.readSync(fd, buffer, 0, want, from);
    const text = buffer.toString('latin1', 0, read);
    const records: CsvRecord[] = [];
    let at = 0;
    while (records.length < maxRecords) {
      const record = parseRecord(text, at);
      if (record === null) break;
      records.push({ offset: from + at, fields: record.fields.map(toUtf8) });
      at = record.end;
    }
    // Not even one whole record in what was read, but more is there: read more.
    if (records.length === 0 && read === want && from + want < limit && want < MAX_RECORD_BYTES) {
      want = Math.min(want * 4, limit - from);
      continue;
    }
    return { records, end: from + at };
  }
}
