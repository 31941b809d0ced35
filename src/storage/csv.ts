/**
 * CSV encoding as SPEC section 4 fixes it: UTF-8, comma separated, `\n` line
 * ends, RFC 4180 quoting (https://www.rfc-editor.org/rfc/rfc4180), and a
 * formula guard so that a spreadsheet never runs a cell. Pure functions only:
 * the worker thread imports this file.
 */

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
