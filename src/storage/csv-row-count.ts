/**
 * Counts a CSV file's rows by scanning it once: a `\n` outside quotes ends a
 * record (RFC 4180: a quoted cell may hold newlines). The header is not a
 * row; a last record not yet ended by `\n` is not counted.
 */
import { createReadStream } from 'node:fs';
import { type RowScan, scanRowEnds } from './csv.js';

export async function countRows(path: string): Promise<number> {
  const scan: RowScan = { quoted: false, rows: 0, end: 0 };
  let position = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    scanRowEnds(scan, chunk, chunk.length, position);
    position += chunk.length;
  }
  return Math.max(0, scan.rows - 1);
}
