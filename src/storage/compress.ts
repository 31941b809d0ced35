/**
 * Compresses one closed file to `<file>.gz` (SPEC section 12), crash-safely,
 * under the file's lock:
 *
 *   gzip into `<file>.gz.tmp` ─► its header stamped with the newest row's time
 *     ─► fsync ─► the `.gz` gets the file's state (id, created, length), durably
 *     ─► rename to `<file>.gz` ─► directory fsync
 *     ─► the plain file and its state removed ─► directory fsync
 *
 * A kill or a power cut at any point leaves the plain file whole, or both
 * forms with one id (readers list the one that holds more, the `.gz` unless
 * a late row reached the plain file since, and the next pass removes the
 * plain file or compresses it again), or the `.gz` alone. A `.gz` appears under its name only
 * whole and fsynced, so a torn one is never taken for the file. The forward
 * cursor is keyed by the id, so it follows the file; `synced` stays the CSV
 * length, so message ids (`<site>:<id>:<offset>`) stay the same.
 *
 * All asynchronous: zlib deflates on the thread pool, and no fs call blocks
 * the event loop, however slow the disk.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { COMPRESSED_SUFFIX, COMPRESSING_SUFFIX, compressedNewestMs, isCompressed, stampNewestMs } from './compressed.js';
import { RECEIVED_AT, readTail } from './csv.js';
import { type FileState, csvNameOfState, fsyncDirectoryAsync, newFileId, readFileStateAsync, stateDirOf, statePathOf, writeFileStateDurablyAsync } from './file-state.js';
import type { LockFile } from './lock.js';

/** The points a crash test stops at: after each durable step. */
export type CompressStep = 'written' | 'state' | 'renamed' | 'removed';

export interface CompressOptions {
  readonly lock: LockFile;
  /** zlib's level: 6, gzip's own default, packs sensor CSV about tenfold at a fraction of 9's cost. */
  readonly level?: number;
  /** Called after each step (tests throw here to stop as a kill would). */
  readonly afterStep?: (step: CompressStep) => Promise<void> | void;
  /** Stops a compression under way (shutdown): its temporary file goes, the plain file stays. */
  readonly signal?: AbortSignal;
}

export type CompressResult =
  | { readonly outcome: 'compressed'; readonly plainBytes: number; readonly storedBytes: number }
  /** A pass cut short after the rename: the plain file is now removed. */
  | { readonly outcome: 'finished' }
  /** Not now: `why` says what it waits for. */
  | { readonly outcome: 'skipped'; readonly why: 'not settled' | 'name taken' }
  | { readonly outcome: 'gone' };

const NEWEST_ROW_TAIL_BYTES = 64 * 1024;

export async function compressClosedFile(path: string, options: CompressOptions): Promise<CompressResult> {
  const release = await options.lock(path);
  try {
    return await compressLocked(path, options);
  } finally {
    await release().catch(() => {});
  }
}

async function compressLocked(path: string, options: CompressOptions): Promise<CompressResult> {
  const step = async (name: CompressStep): Promise<void> => {
    await options.afterStep?.(name);
  };
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (info === null) return { outcome: 'gone' };
  if (info.size === 0 || !(await endsWithLineEnd(path, info.size))) return { outcome: 'skipped', why: 'not settled' };
  const state = (await readFileStateAsync(path)) ?? (await stateForStateless(path, info));
  if (state === null) return { outcome: 'skipped', why: 'not settled' };
  // Whole and vouched for: a file whose state lags its length (or is mid-archive) waits for the writer or repair.
  if (state.archivedAs !== undefined || state.synced !== info.size) return { outcome: 'skipped', why: 'not settled' };

  const target = path + COMPRESSED_SUFFIX;
  const dir = dirname(path);
  if (await exists(target)) {
    const existing = await readFileStateAsync(target).catch(() => null);
    if (existing?.id !== state.id) return { outcome: 'skipped', why: 'name taken' };
    // A compression cut short after its rename: the .gz holds the file whole, so the plain file goes.
    if (existing.synced >= state.synced) {
      await removePlain(path, dir);
      return { outcome: 'finished' };
    }
    // Rows came to the plain file since (a late row to a day file): it holds all the .gz does and more,
    // so the .gz goes and the file is compressed again.
    await unlink(target);
    await unlink(statePathOf(target)).catch(() => {});
    await fsyncDirectoryAsync(dir);
  }

  const newestMs = await newestRowMs(path, info.mtimeMs);
  const temporary = path + COMPRESSING_SUFFIX;
  options.signal?.throwIfAborted();
  try {
    const source = createReadStream(path, { start: 0, end: info.size - 1 });
    await pipeline(source, createGzip({ level: options.level ?? 6 }), createWriteStream(temporary), { signal: options.signal });
    if (source.bytesRead !== info.size) throw new Error(`${basename(path)} changed while it was compressed (${source.bytesRead} of ${info.size} bytes read)`);
    const handle = await open(temporary, 'r+');
    try {
      await stampNewestMs(handle, newestMs);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
  await step('written');

  await writeFileStateDurablyAsync(target, { id: state.id, created: state.created, synced: state.synced });
  await step('state');
  await rename(temporary, target);
  await fsyncDirectoryAsync(dir);
  await step('renamed');
  // Grown meanwhile (only if our lock was lost): both forms stay, readers take the plain file, and the next pass
  // compresses it again.
  if ((await stat(path)).size !== info.size) return { outcome: 'skipped', why: 'not settled' };
  await removePlain(path, dir, step);
  return { outcome: 'compressed', plainBytes: info.size, storedBytes: (await stat(target)).size };
}

/** The plain file, then its state (a state without its file is read by nothing), made durable. */
async function removePlain(path: string, dir: string, step?: (name: CompressStep) => Promise<void>): Promise<void> {
  await unlink(path);
  await step?.('removed');
  await unlink(statePathOf(path)).catch(() => {});
  await fsyncDirectoryAsync(dir);
}

/**
 * A closed file the writer never kept a state for (an older version's, one
 * copied in by hand) is given one, so that both forms carry one id through
 * the steps. Not an archive whose rename is under way, though (a current
 * file's state still marked with its name): that mark brings the file's own
 * id, and a new one given here would let the old id pass to the next file
 * (file-state.ts). The mark is looked for before the state is read again:
 * the writer writes the archive's state before it clears the mark.
 */
async function stateForStateless(path: string, info: { size: number; mtimeMs: number }): Promise<FileState | null> {
  if (await isRenameUnderWay(path)) return null;
  const written = await readFileStateAsync(path);
  if (written !== null) return written;
  const state = { id: newFileId(), created: Math.floor(info.mtimeMs), synced: info.size };
  await writeFileStateDurablyAsync(path, state);
  return state;
}

/** Whether a state in the file's folder marks an archive rename to this file's name. */
async function isRenameUnderWay(path: string): Promise<boolean> {
  const name = basename(path);
  const names = await readdir(stateDirOf(dirname(path))).catch((): string[] => []);
  for (const stateName of names) {
    const described = csvNameOfState(stateName);
    if (described === null || described === name) continue;
    const state = await readFileStateAsync(join(dirname(path), described)).catch(() => null);
    if (state?.archivedAs === name) return true;
  }
  return false;
}

/** Whether the file's last byte is a `\n` (a torn last row never is): only whole files are compressed. */
async function endsWithLineEnd(path: string, size: number): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Epoch ms of a file's newest row (its last `received_at`); `fallbackMs`
 * (the modification time) for a file without one. Read from the file's last
 * 64 KiB; for a `.gz`, from the time its compression stamped in its header.
 */
export async function newestRowMs(path: string, fallbackMs: number): Promise<number> {
  if (isCompressed(path)) return (await compressedNewestMs(path).catch(() => null)) ?? fallbackMs;
  const tail = await readTail(path, NEWEST_ROW_TAIL_BYTES).catch(() => null);
  const at = tail?.header.indexOf(RECEIVED_AT) ?? -1;
  const last = tail?.rows.at(-1);
  const parsed = at < 0 || last === undefined ? Number.NaN : Date.parse(last[at] ?? '');
  return Number.isNaN(parsed) ? fallbackMs : parsed;
}
