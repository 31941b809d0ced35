/**
 * Counts a CSV file's rows by scanning it once: a `\n` outside quotes ends a
 * record (RFC 4180: a quoted cell may hold newlines). The header is not a
 * row; a last record not yet ended by `\n` is not counted.
 */
import { createReadStream } from 'node:fs';

export async function countRows(path: string): Promise<number> {
  let records = 0;
  let quoted = false;
  for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      // A doubled quote inside a quoted cell toggles twice: the state is right again after it.
      if (byte === 0x22) quoted = !quoted;
      else if (byte === 0x0a && !quoted) records++;
    }
  }
  return Math.max(0, records - 1);
}
