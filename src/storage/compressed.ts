/**
 * Stream files as stored: plain `<file>.csv`, or `<file>.csv.gz` once a
 * closed file is compressed (SPEC section 12). Every reader takes a file's
 * CSV bytes from here, so it reads both forms the same way.
 *
 * A compressed file's gzip header carries, as its MTIME ("the modification
 * time of the original file", RFC 1952), the `received_at` of its newest
 * row: retention learns a `.gz` file's age from its first 10 bytes instead
 * of decompressing it.
 *
 * No Express, no prom-client: storage code.
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

export const COMPRESSED_SUFFIX = '.gz';
/** Where a compression writes before its rename: never matched as a stream file. */
export const COMPRESSING_SUFFIX = '.gz.tmp';

const GZIP_MAGIC = [0x1f, 0x8b, 0x08];
/** Offset of the gzip header's 4-byte MTIME, little-endian seconds. */
const MTIME_OFFSET = 4;

export function isCompressed(path: string): boolean {
  return path.endsWith(`.csv${COMPRESSED_SUFFIX}`);
}

/**
 * Opens a stream file for reading its CSV bytes. A plain file compressed since
 * it was listed (renamed to `.gz` in between) is read from its `.gz`: a
 * listing never goes stale for a reader by a compression.
 */
async function openStored(path: string, fallBack: boolean): Promise<{ handle: FileHandle; compressed: boolean }> {
  try {
    return { handle: await open(path, 'r'), compressed: isCompressed(path) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || isCompressed(path) || !fallBack) throw error;
    try {
      return { handle: await open(path + COMPRESSED_SUFFIX, 'r'), compressed: true };
    } catch {
      throw error; // gone in both forms: the first error (ENOENT) says so
    }
  }
}

/**
 * The file's CSV bytes, a chunk at a time, decompressed when the file is a
 * `.gz`. zlib inflates on the thread pool: the event loop never waits on it.
 * From `start` (a CSV byte offset) when given. `fallBack: false` when the
 * reader has the `.gz` in its own listing already (it is another file then). Throws ENOENT for a file gone in both forms, and zlib's error for a `.gz`
 * that is not whole ("unexpected end of file"): a torn `.gz` is never read
 * as a shorter file.
 */
export async function* csvChunks(path: string, chunkBytes = 64 * 1024, start = 0, fallBack = true): AsyncGenerator<Buffer> {
  const { handle, compressed } = await openStored(path, fallBack);
  const raw = handle.createReadStream({ highWaterMark: chunkBytes, ...(compressed ? {} : { start }) });
  let stream: Readable = raw;
  // A .gz is read from its start: the CSV bytes before `start` are inflated and passed over.
  let skip = compressed ? start : 0;
  if (compressed) {
    // pipeline destroys both on an error or an early stop, and closes the file.
    stream = pipeline(raw, createGunzip({ chunkSize: chunkBytes }), () => {});
  }
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      yield skip > 0 ? chunk.subarray(skip) : chunk;
      skip = 0;
    }
  } finally {
    stream.destroy();
    raw.destroy();
  }
}

/** The `received_at` (epoch ms, to the second) a `.gz` file's header carries; null if it carries none. */
export async function compressedNewestMs(path: string): Promise<number | null> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(10);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < header.length || GZIP_MAGIC.some((byte, i) => header[i] !== byte)) return null;
    const seconds = header.readUInt32LE(MTIME_OFFSET);
    return seconds === 0 ? null : seconds * 1000;
  } finally {
    await handle.close();
  }
}

/** Sets the MTIME of the gzip data in `handle` (written by zlib with 0) to `epochMs`, to the second. */
export async function stampNewestMs(handle: FileHandle, epochMs: number): Promise<void> {
  const stamp = Buffer.alloc(4);
  stamp.writeUInt32LE(Math.max(0, Math.min(0xffff_ffff, Math.floor(epochMs / 1000))));
  await handle.write(stamp, 0, stamp.length, MTIME_OFFSET);
}

/**
 * The CSV bytes a `.gz` file holds, from its trailer (ISIZE: the length
 * modulo 2^32); the stored size for a plain file.
 */
export async function plainSizeOf(path: string, storedBytes: number): Promise<number> {
  if (!isCompressed(path) || storedBytes < 18) return storedBytes;
  const handle = await open(path, 'r');
  try {
    const trailer = Buffer.alloc(4);
    await handle.read(trailer, 0, 4, storedBytes - 4);
    return trailer.readUInt32LE(0);
  } finally {
    await handle.close();
  }
}
