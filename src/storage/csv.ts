/**
 * The one CSV module: every reader and writer of the stream files goes
 * through it (the writer thread, start-up repair, the forwarder, the
 * collector's repair, `/streams`, the CSV download and the dashboard).
 *
 * - Encoding as SPEC section 4 fixes it: UTF-8, comma separated, `\n` line
 *   ends, RFC 4180 quoting (https://www.rfc-editor.org/rfc/rfc4180), and a
 *   formula guard so that a spreadsheet never runs a cell.
 * - Parsing: one record at a time, and a byte scan for row ends.
 * - Reading files: the header, rows by byte offset, the rows' end, the last
 *   rows (tail) and the row count. The synchronous readers take an fd and an
 *   fs seam (the writer thread and the forwarder); the asynchronous ones take
 *   a path (routes on the main thread, which must never block on a disk).
 *
 * Files are read as bytes: a header's end and a row's offset are byte
 * offsets. Quotes, commas and newlines are ASCII and cannot occur inside a
 * UTF-8 sequence, so the bytes are parsed as latin1 (one character a byte)
 * and each field is turned back into UTF-8 after.
 *
 * No Express, no prom-client: the worker thread imports this file.
 */
import type * as nodeFs from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { csvChunks, isCompressed } from './compressed.js';

/** SPEC section 9: what counts as "a number" for the formula guard. */
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/** Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection"). */
const FORMULA_START = new Set(['=', '+', '-', '@', '\t', '\r']);
const NEEDS_QUOTES = /[",\r\n]/;

export const RECEIVED_AT = 'received_at';

/**
 * The longest header line read: past any header the writer makes at the
 * default MAX_COLUMNS (1,024 keys of 128 characters, guarded and quoted: under
 * 1.5 MB even in 4-byte UTF-8), and small enough to read into memory on a Pi.
 * A first line longer than this is not a header of ours (a file that is not
 * CSV, NUL bytes on a damaged card).
 */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;

/** Prefixes `'` to a cell a spreadsheet would run as a formula. Header cells are guarded too. */
export function guardCell(text: string): string {
  const first = text[0];
  if (first !== undefined && FORMULA_START.has(first) && !NUMBER.test(text)) return `'${text}`;
  return text;
}

/** A header or data cell as it was sent: the formula guard's `'` taken off again (guardCell's inverse). */
export function unguardCell(text: string): string {
  if (text[0] !== "'") return text;
  const sent = text.slice(1);
  return guardCell(sent) === text ? sent : text;
}

/** RFC 4180 quoting: a field holding a comma, quote, CR or LF is quoted, quotes doubled. */
export function quoteField(text: string): string {
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One cell as written: guarded, then quoted. */
export function encodeCell(text: string): string {
  return quoteField(guardCell(text));
}

/** One record line, fields already guarded where they need to be. */
export function encodeLine(fields: readonly string[]): string {
  let line = '';
  for (let i = 0; i < fields.length; i++) {
    if (i > 0) line += ',';
    line += quoteField(fields[i] as string);
  }
  return `${line}\n`;
}

/** `received_at`: ISO 8601 UTC with milliseconds. */
export function formatReceivedAt(epochMs: number): string {
  return new Date(epochMs).toISOString();
}

/** A row as the encoder needs it: when it was received, its columns and their cell texts. */
export interface CsvRow {
  readonly receivedAt: number;
  readonly columns: readonly string[];
  readonly cells: readonly string[];
}

/** The rows' columns as header cells (guarded), in first-seen order. */
export function headerColumns(rows: readonly CsvRow[]): string[] {
  const seen = new Set<string>();
  const columns: string[] = [];
  for (const row of rows) {
    for (const column of row.columns) {
      const cell = guardCell(column);
      if (!seen.has(cell)) {
        seen.add(cell);
        columns.push(cell);
      }
    }
  }
  return columns;
}

/** The rows' lines under `header` (guarded header cells, `received_at` first); missing keys stay empty. */
export function encodeRows(header: readonly string[], rows: readonly CsvRow[]): string {
  const index = new Map<string, number>();
  header.forEach((cell, i) => index.set(cell, i));
  let text = '';
  for (const row of rows) {
    const fields = new Array<string>(header.length).fill('');
    fields[0] = formatReceivedAt(row.receivedAt);
    for (let i = 0; i < row.columns.length; i++) {
      fields[index.get(guardCell(row.columns[i] as string)) as number] = guardCell(row.cells[i] as string);
    }
    text += encodeLine(fields);
  }
  return text;
}

export interface ParsedRecord {
  readonly fields: string[];
  /** Offset just past the record's terminating `\n`. */
  readonly end: number;
}

/**
 * Parses the record that starts at `start`. Returns null when the text ends
 * before the record's `\n` (a cut or not yet complete record). Fields are
 * sliced out in runs between delimiters, never built a character at a time:
 * a line of many megabytes (a file that is not CSV, NUL bytes on a damaged
 * card) costs about its own size, not twenty times it.
 */
export function parseRecord(text: string, start = 0): ParsedRecord | null {
  const fields: string[] = [];
  let i = start;
  // The record's line feed, looked for once (again only when a quoted field holds it): one scan a line.
  let newline = text.indexOf('\n', i);
  const delimiterAt = (from: number): number => {
    if (newline >= 0 && newline < from) newline = text.indexOf('\n', from);
    if (newline < 0) return -1;
    const comma = text.indexOf(',', from);
    return comma >= 0 && comma < newline ? comma : newline;
  };
  for (;;) {
    if (text.charCodeAt(i) === 0x22) {
      // A quoted field: runs up to each quote; a doubled quote is one quote of the text.
      let field = '';
      let from = i + 1;
      for (;;) {
        const quote = text.indexOf('"', from);
        if (quote < 0) return null;
        field += text.slice(from, quote);
        if (text.charCodeAt(quote + 1) !== 0x22) {
          i = quote + 1;
          break;
        }
        field += '"';
        from = quote + 2;
      }
      // What follows the closing quote up to the delimiter belongs to the field (lenient, as before).
      const end = delimiterAt(i);
      if (end < 0) return null;
      fields.push(field + text.slice(i, end));
      i = end;
    } else {
      const end = delimiterAt(i);
      if (end < 0) return null;
      fields.push(text.slice(i, end));
      i = end;
    }
    if (text.charCodeAt(i) === 0x0a) return { fields, end: i + 1 };
    i++; // past the comma
  }
}

/** Where a scan for row ends stands between chunks: inside quotes or not. */
export interface RowScan {
  quoted: boolean;
  /** Rows ended so far. */
  rows: number;
  /** Offset just past the last row end seen (relative to where the scan began). */
  end: number;
}

/**
 * Moves a scan over the next `length` bytes of `chunk`, which lie at `position`
 * from where the scan began (a row boundary). A row ends at a `\n` outside
 * quotes; RFC 4180 doubles quotes inside quoted fields, so a doubled quote
 * toggles twice and the state is right again after it.
 */
export function scanRowEnds(scan: RowScan, chunk: Buffer, length: number, position: number): void {
  for (let i = 0; i < length; i++) {
    const byte = chunk[i];
    if (byte === 0x22) scan.quoted = !scan.quoted;
    else if (byte === 0x0a && !scan.quoted) {
      scan.rows++;
      scan.end = position + i + 1;
    }
  }
}

// ---------------------------------------------------------------------------
// Reading files

/** The part of node:fs the synchronous readers use (a seam for fault tests). */
type ReadFs = Pick<typeof nodeFs, 'readSync'>;

/** A header, or a record read by offset: its fields and where it lies in the file. */
export interface CsvRecord {
  /** Byte offset of the record's first byte. */
  readonly offset: number;
  readonly fields: string[];
}

/** The header record: its fields, the byte offset just past its `\n`, and the line's bytes. */
export interface HeaderRecord {
  readonly fields: string[];
  readonly end: number;
  /** The line as it is in the file, `\n` included (a view of the read buffer: copy it to keep it). */
  readonly line: Buffer;
}

/** Most headers are well under this: one small read. */
const HEADER_FIRST_READ_BYTES = 16 * 1024;
const FIRST_READ_BYTES = 64 * 1024;
/** A row is at most MAX_REQUEST_BYTES and its quoting; past this, the file is not ours to read. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
const SCAN_CHUNK_BYTES = 1 << 20;

function toUtf8(field: string): string {
  return /\P{ASCII}/u.test(field) ? Buffer.from(field, 'latin1').toString('utf8') : field;
}

/**
 * The header at the start of `bytes` (the file's first bytes): its first
 * line, or null if no line end is in them yet. A header never holds a line
 * break (keys refuse control characters), so the first `\n` ends it, even in
 * a foreign file whose first line opens a quote it never closes: such a line
 * reads as no columns, not as a header that swallows the rows after it.
 */
function headerIn(bytes: Buffer): HeaderRecord | null {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) return null;
  const record = parseRecord(bytes.toString('latin1', 0, newline + 1));
  return { fields: record === null ? [] : record.fields.map(toUtf8), end: newline + 1, line: bytes.subarray(0, newline + 1) };
}

/** Reads `length` bytes at `position` into `buffer`, however many reads it takes (NFS and FUSE return short reads); fewer only at the end of the file. */
export function readFully(fs: ReadFs, fd: number, buffer: Buffer, length: number, position: number): number {
  let filled = 0;
  while (filled < length) {
    const read = fs.readSync(fd, buffer, filled, length - filled, position + filled);
    if (read <= 0) break;
    filled += read;
  }
  return filled;
}

/**
 * How much of the file's start to read next in search of the header's end:
 * four times the last read, never past `limit` or MAX_HEADER_BYTES; 0 when
 * there is nothing more to try.
 */
function nextHeaderRead(last: number, limit: number): number {
  const cap = Math.min(limit, MAX_HEADER_BYTES);
  if (last === 0) return Math.min(HEADER_FIRST_READ_BYTES, cap);
  return last >= cap ? 0 : Math.min(last * 4, cap);
}

/**
 * The header record of the file open on `fd`, reading no further than `limit`
 * (the part known fsynced, or the size); null if the file holds no whole
 * first line there, or none within MAX_HEADER_BYTES (not a header of ours).
 */
export function readHeaderRecord(fs: ReadFs, fd: number, limit: number): HeaderRecord | null {
  for (let want = nextHeaderRead(0, limit); want > 0; want = nextHeaderRead(want, limit)) {
    const buffer = Buffer.allocUnsafe(want);
    const read = readFully(fs, fd, buffer, want, 0);
    const header = headerIn(buffer.subarray(0, read));
    if (header !== null || read < want) return header;
  }
  return null;
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

/**
 * Counts the whole rows in [from, limit) and finds where the last one ends,
 * reading about `maxBytes` at most (more if the first row is longer, so a
 * scan always moves on while whole rows are there). `from` is a row boundary.
 */
export function scanRows(fs: ReadFs, fd: number, from: number, limit: number, maxBytes = Number.POSITIVE_INFINITY): { count: number; end: number } {
  const chunk = Buffer.alloc(Math.min(SCAN_CHUNK_BYTES, Math.max(limit - from, 1)));
  const scan: RowScan = { quoted: false, rows: 0, end: 0 };
  for (let position = from; position < limit; ) {
    const read = fs.readSync(fd, chunk, 0, Math.min(chunk.length, limit - position), position);
    if (read <= 0) break;
    scanRowEnds(scan, chunk, read, position - from);
    position += read;
    if (scan.rows > 0 && position - from >= maxBytes) break;
  }
  return { count: scan.rows, end: from + scan.end };
}

/**
 * Offset just past the last `\n` outside quotes, scanning from `from`, which
 * must be a row boundary (0, or where a row is known to end); `from` if none.
 */
export function endOfLastRow(fs: ReadFs, fd: number, size: number, from = 0): number {
  return scanRows(fs, fd, from, size).end;
}

/**
 * Counts a CSV file's rows by scanning it once, without blocking: a `\n`
 * outside quotes ends a record (RFC 4180: a quoted cell may hold newlines).
 * The header is not a row; a last record not yet ended by `\n` is not counted.
 */
export async function countRows(path: string): Promise<number> {
  const scan: RowScan = { quoted: false, rows: 0, end: 0 };
  let position = 0;
  for await (const chunk of csvChunks(path)) {
    scanRowEnds(scan, chunk, chunk.length, position);
    position += chunk.length;
  }
  return Math.max(0, scan.rows - 1);
}

/** How much of a file's end is read at start-up, per stream. */
export const TAIL_BYTES = 512 * 1024;
/** Every row starts with its `received_at` (ISO 8601 UTC, milliseconds). */
const ROW_START = /\n(?=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z[,\n])/;

export interface Tail {
  readonly header: string[];
  /** Byte offset just past the header line: where the rows start. */
  readonly headerEnd: number;
  /** Complete rows, oldest first, each with as many cells as the header. */
  readonly rows: string[][];
  /** Whether rows before the first one returned were left unread. */
  readonly cut: boolean;
  /** Bytes read from the file, header included. */
  readonly bytesRead: number;
}

/** The part of node:fs/promises the asynchronous readers use: a seam for tests that count reads. */
export type OpenFile = (path: string, flags: 'r') => Promise<{
  stat(): Promise<{ size: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}>;

/**
 * The file's header and its rows in the last `maxBytes`, without reading the
 * whole file. The first, probably partial, line of that tail is dropped, and
 * so is a last row not yet ended by `\n` (a write under way in another
 * process). Null for a file with no complete header yet; throws for a file
 * with no line end in its first MAX_HEADER_BYTES (16 MiB): not a CSV file
 * this server wrote, and never read whole.
 */
export async function readTail(path: string, maxBytes = TAIL_BYTES, open: OpenFile = openFile): Promise<Tail | null> {
  if (isCompressed(path)) return readStreamedTail(path, maxBytes);
  let file: Awaited<ReturnType<OpenFile>>;
  try {
    file = await open(path, 'r');
  } catch (error) {
    // Compressed since it was listed: its .gz holds the same rows.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return readStreamedTail(path, maxBytes);
    throw error;
  }
  try {
    const { size } = await file.stat();
    let bytesRead = 0;
    const readAt = async (position: number, length: number): Promise<Buffer> => {
      const buffer = Buffer.alloc(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead: n } = await file.read(buffer, filled, length - filled, position + filled);
        if (n === 0) break;
        filled += n;
      }
      bytesRead += filled;
      return buffer.subarray(0, filled);
    };

    // The header, read as readHeaderRecord reads it: each read four times the last.
    let head = Buffer.alloc(0);
    let header: HeaderRecord | null = null;
    for (let want = nextHeaderRead(0, size); want > 0 && header === null; want = nextHeaderRead(want, size)) {
      // What was read already is kept; only the rest is read.
      head = Buffer.concat([head, await readAt(head.length, want - head.length)]);
      header = headerIn(head);
      if (head.length < want) break; // the file shrank since its stat
    }
    if (header === null) {
      if (size > MAX_HEADER_BYTES && head.length >= MAX_HEADER_BYTES) throw noHeaderError(path);
      return null;
    }

    const start = Math.max(header.end, size - maxBytes);
    // What the header read already holds is not read again.
    const reused = start < head.length ? head.subarray(start) : Buffer.alloc(0);
    const from = start + reused.length;
    const text = Buffer.concat([reused, from < size ? await readAt(from, size - from) : Buffer.alloc(0)]).toString('utf8');
    return tailOf(header, text, start > header.end, bytesRead);
  } finally {
    await file.close();
  }
}

/**
 * readTail of a `.gz` file: its CSV bytes come only from its start, so they
 * are streamed through, keeping the header and the last `maxBytes`.
 * `bytesRead` counts the CSV bytes inflated.
 */
async function readStreamedTail(path: string, maxBytes: number): Promise<Tail | null> {
  let head = Buffer.alloc(0);
  let header: HeaderRecord | null = null;
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let size = 0;
  for await (const chunk of csvChunks(path)) {
    size += chunk.length;
    let rest = chunk;
    if (header === null) {
      head = Buffer.concat([head, chunk]);
      header = headerIn(head);
      if (header === null) {
        if (head.length > MAX_HEADER_BYTES) throw noHeaderError(path);
        continue;
      }
      header = { ...header, line: Buffer.from(header.line) };
      if (maxBytes === 0) break;
      rest = head.subarray(header.end);
    }
    kept.push(rest);
    keptBytes += rest.length;
    while (kept.length > 1 && keptBytes - (kept[0] as Buffer).length >= maxBytes) keptBytes -= (kept.shift() as Buffer).length;
  }
  if (header === null) return null;
  const bytes = Buffer.concat(kept);
  const start = Math.max(header.end, size - maxBytes);
  const text = bytes.subarray(Math.max(0, bytes.length - (size - start))).toString('utf8');
  return tailOf(header, text, start > header.end, size);
}

/** The rows of a tail's text; a `cut` text starts part-way through a row, which is skipped. */
function tailOf(header: HeaderRecord, text: string, cut: boolean, bytesRead: number): Tail {
  let offset = 0;
  if (cut) {
    // Skip to the first line that starts a row; a quoted cell may hold newlines, so the first `\n` alone is not enough.
    const match = ROW_START.exec(text);
    if (match === null) return { header: header.fields, headerEnd: header.end, rows: [], cut, bytesRead };
    offset = match.index + 1;
  }
  const rows: string[][] = [];
  for (;;) {
    const record = parseRecord(text, offset);
    if (record === null) break;
    offset = record.end;
    if (record.fields.length === header.fields.length) rows.push(record.fields);
  }
  return { header: header.fields, headerEnd: header.end, rows, cut, bytesRead };
}

function noHeaderError(path: string): Error {
  return new Error(`${path} has no header line in its first ${MAX_HEADER_BYTES} bytes: not a CSV file this server wrote`);
}

/**
 * A file's CSV bytes from `from` (a row boundary) up to `to`, in pieces that
 * end at a row's end (its `\n` outside quotes), each with its offset: the
 * way through a file for readers that take whole rows (the forwarder on a
 * `.gz`, the dashboard's summaries). A `.gz` is read from its start.
 */
export async function* wholeRowPieces(path: string, from: number, to = Number.POSITIVE_INFINITY, chunkBytes = 64 * 1024): AsyncGenerator<{ readonly bytes: Buffer; readonly offset: number }> {
  const scan: RowScan = { quoted: false, rows: 0, end: 0 };
  let position = from;
  let pending: Buffer[] = [];
  let pendingStart = from;
  for await (const read of csvChunks(path, chunkBytes, from)) {
    const chunk = position + read.length > to ? read.subarray(0, to - position) : read;
    const ended = scan.end;
    scanRowEnds(scan, chunk, chunk.length, position - from);
    position += chunk.length;
    if (scan.end === ended) {
      pending.push(chunk);
    } else {
      const cut = chunk.length - (position - from - scan.end);
      yield { bytes: Buffer.concat([...pending, chunk.subarray(0, cut)]), offset: pendingStart };
      pending = cut < chunk.length ? [chunk.subarray(cut)] : [];
      pendingStart = from + scan.end;
    }
    if (position >= to) break;
  }
}

/** The whole records in [from, to) of a file's CSV bytes, in order; `from` is a record boundary. */
export async function* streamRecords(path: string, from: number, to: number): AsyncGenerator<CsvRecord & { readonly end: number }> {
  for await (const { bytes, offset } of wholeRowPieces(path, from, to)) {
    const text = bytes.toString('latin1');
    for (let at = 0; at < text.length; ) {
      const record = parseRecord(text, at);
      if (record === null) break;
      yield { offset: offset + at, end: offset + record.end, fields: record.fields.map(toUtf8) };
      at = record.end;
    }
  }
}

/** The file's header alone (one small read); null if it has no complete header line. */
export async function readHeader(path: string, open: OpenFile = openFile): Promise<string[] | null> {
  return (await readTail(path, 0, open))?.header ?? null;
}
