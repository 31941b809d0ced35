/**
 * Reads the header and the last rows of a CSV file without reading the whole
 * file: the header line, then at most `maxBytes` from the end. The first,
 * probably partial, line of that tail is dropped, and so is a last row not
 * yet ended by `\n` (a write under way in another process).
 */
import { open as openFile } from 'node:fs/promises';
import { MAX_HEADER_BYTES, parseRecord } from './csv.js';

/** How much of a file's end is read at start-up, per stream. */
export const TAIL_BYTES = 512 * 1024;
const HEADER_CHUNK_BYTES = 16 * 1024;
/** A file with no line end within MAX_HEADER_BYTES (csv.ts) is refused loudly, never read whole. */
const HEADER_MAX_BYTES = MAX_HEADER_BYTES;
/** Every row starts with its `received_at` (ISO 8601 UTC, milliseconds). */
const ROW_START = /\n(?=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z[,\n])/;

export interface Tail {
  readonly header: string[];
  /** Complete rows, oldest first, each with as many cells as the header. */
  readonly rows: string[][];
  /** Whether rows before the first one returned were left unread. */
  readonly cut: boolean;
  /** Bytes read from the file, header included. */
  readonly bytesRead: number;
}

/** The part of node:fs/promises used here: a seam for tests that count reads. */
export type OpenFile = (path: string, flags: 'r') => Promise<{
  stat(): Promise<{ size: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}>;

/**
 * The file's header and its rows in the last `maxBytes`; null for a file with
 * no complete header yet. Throws for a file with no line end in its first MAX_HEADER_BYTES (16 MiB).
 */
export async function readTail(path: string, maxBytes = TAIL_BYTES, open: OpenFile = openFile): Promise<Tail | null> {
  const file = await open(path, 'r');
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

    // The header: read until its `\n` (column names hold no newline), however
    // long it is (a cap of 256 KB once hid a wide file's rows and columns).
    // Each read is twice the last and only its own bytes are searched, so a
    // wide header costs time linear in its length.
    const parts: Buffer[] = [];
    let headLength = 0;
    let headerEnd = -1;
    for (let want = HEADER_CHUNK_BYTES; headerEnd < 0 && headLength < size; want *= 2) {
      if (headLength >= HEADER_MAX_BYTES) throw new Error(`${path} has no header line in its first ${HEADER_MAX_BYTES} bytes: not a CSV file this server wrote`);
      const part = await readAt(headLength, Math.min(want, size - headLength, HEADER_MAX_BYTES - headLength));
      if (part.length === 0) break; // the file shrank since its stat
      const at = part.indexOf(0x0a);
      if (at >= 0) headerEnd = headLength + at;
      parts.push(part);
      headLength += part.length;
    }
    if (headerEnd < 0) return null;
    const head = Buffer.concat(parts, headLength);
    const header = parseRecord(head.toString('utf8', 0, headerEnd + 1))?.fields ?? [];

    const start = Math.max(headerEnd + 1, size - maxBytes);
    // What the header read already holds is not read again.
    const reused = start < head.length ? head.subarray(start) : Buffer.alloc(0);
    const from = start + reused.length;
    const text = Buffer.concat([reused, from < size ? await readAt(from, size - from) : Buffer.alloc(0)]).toString('utf8');
    const cut = start > headerEnd + 1;
    let offset = 0;
    if (cut) {
      // Skip to the first line that starts a row; a quoted cell may hold newlines, so the first `\n` alone is not enough.
      const match = ROW_START.exec(text);
      if (match === null) return { header, rows: [], cut, bytesRead };
      offset = match.index + 1;
    }
    const rows: string[][] = [];
    for (;;) {
      const record = parseRecord(text, offset);
      if (record === null) break;
      offset = record.end;
      if (record.fields.length === header.length) rows.push(record.fields);
    }
    return { header, rows, cut, bytesRead };
  } finally {
    await file.close();
  }
}

/** The file's header alone (one small read); null if it has no complete header line. */
export async function readHeader(path: string, open: OpenFile = openFile): Promise<string[] | null> {
  return (await readTail(path, 0, open))?.header ?? null;
}
