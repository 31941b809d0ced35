/**
 * Each CSV file's identity and how much of it is known durable (SPEC section
 * 10), kept beside it in `<dir>/.sensor-ingest/files/<file name>.state`:
 *
 *   v1 <file id> <created, epoch ms> <synced length, 16 digits>[ <archive name>]
 *
 * The writer keeps it, always under the CSV file's lock: a new file gets a
 * random id (never reused, and unlike an inode it survives a copy or restore
 * of DATA_DIR); after each fsync the synced length is rewritten in place.
 * The forwarder reads a file only up to that length, so it never sends a row
 * a power cut could still take away.
 *
 * An archive rename moves the state with the file. The renames cannot be one
 * atomic step, so the current file's state is first marked with the archive's
 * name (durably); whoever next holds the lock and finds the mark completes the
 * move (`ensureFileState`). A crash half-way therefore never leaves the old
 * file's id on the new file, which would make the forwarder send new rows
 * under old ids. Imports only file code: this module runs in the worker thread.
 */
import { randomBytes } from 'node:crypto';
import { open as openAsync, readFile, rename as renameAsync, mkdir as mkdirAsync } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type WriterFs, fsyncDirectory, writeAll } from './fs.js';

export const STATE_DIR = '.sensor-ingest';
const FILES_DIR = 'files';
const STATE_SUFFIX = '.state';
const SYNCED_DIGITS = 16;
const STATE_LINE = /^v1 ([0-9a-f]{16}) (\d{1,16}) (\d{16})(?: ([^\s/]+))?\n$/;

export interface FileState {
  /** Given when the file is created; follows it through an archive rename. */
  readonly id: string;
  /** Epoch ms the file was created: orders a stream's files. */
  readonly created: number;
  /** Bytes from the start of the file known to be fsynced, whole rows only. */
  readonly synced: number;
  /** Set while an archive rename is under way: the name the file is being renamed to. */
  readonly archivedAs?: string;
}

/** Where the states of the CSV files in `dir` are kept. */
export function stateDirOf(dir: string): string {
  return join(dir, STATE_DIR, FILES_DIR);
}

export function statePathOf(csvPath: string): string {
  return join(stateDirOf(dirname(csvPath)), basename(csvPath) + STATE_SUFFIX);
}

/** The CSV file name (`.csv`, or `.csv.gz` once compressed) a state file describes, or null for anything else in the folder. */
export function csvNameOfState(stateFileName: string): string | null {
  const described = stateFileName.endsWith(STATE_SUFFIX) ? stateFileName.slice(0, -STATE_SUFFIX.length) : '';
  return described.endsWith('.csv') || described.endsWith('.csv.gz') ? described : null;
}

export function newFileId(): string {
  return randomBytes(8).toString('hex');
}

export function encodeFileState(state: FileState): string {
  const synced = String(state.synced).padStart(SYNCED_DIGITS, '0');
  return `v1 ${state.id} ${state.created} ${synced}${state.archivedAs === undefined ? '' : ` ${state.archivedAs}`}\n`;
}

export function parseFileState(text: string): FileState | null {
  const match = STATE_LINE.exec(text);
  if (match === null) return null;
  const [, id, created, synced, archivedAs] = match as unknown as [string, string, string, string, string | undefined];
  return { id, created: Number(created), synced: Number(synced), ...(archivedAs === undefined ? {} : { archivedAs }) };
}

/**
 * The state of `csvPath`, or null when it has none. Any other failure to read
 * it (EMFILE, EIO, a line that does not parse) throws (SPEC section 11): taken
 * as "no state", it would give the file a new id, and its rows would be
 * forwarded again under it.
 */
export function readFileState(fs: Pick<WriterFs, 'openSync' | 'readSync' | 'closeSync'>, csvPath: string): FileState | null {
  const path = statePathOf(csvPath);
  const fd = openIfExists(fs, path);
  if (fd === null) return null;
  let text: string;
  try {
    const buffer = Buffer.alloc(512);
    const read = fs.readSync(fd, buffer, 0, buffer.length, 0);
    text = buffer.toString('utf8', 0, read);
  } finally {
    fs.closeSync(fd);
  }
  const state = parseFileState(text);
  if (state === null) {
    throw Object.assign(new Error(`the file state ${path} does not parse (${JSON.stringify(text.slice(0, 80))}); restore it from a copy; moving it away gives the file a new id, and forwarding then sends the whole file again`), {
      code: 'EBADSTATE',
    });
  }
  return state;
}

/** readFileState without blocking: for the main thread (compression), where a slow disk must not stop requests. */
export async function readFileStateAsync(csvPath: string): Promise<FileState | null> {
  let text: string;
  try {
    text = await readFile(statePathOf(csvPath), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const state = parseFileState(text);
  if (state === null) throw Object.assign(new Error(`the file state ${statePathOf(csvPath)} does not parse`), { code: 'EBADSTATE' });
  return state;
}

/** writeFileStateDurably without blocking (compression, on the main thread). */
export async function writeFileStateDurablyAsync(csvPath: string, state: FileState): Promise<void> {
  const dir = stateDirOf(dirname(csvPath));
  await mkdirAsync(dir, { recursive: true });
  const path = statePathOf(csvPath);
  const temporary = `${path}.tmp`;
  const handle = await openAsync(temporary, 'w');
  try {
    await handle.writeFile(encodeFileState(state));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await renameAsync(temporary, path);
  await fsyncDirectoryAsync(dir);
}

/** A new, renamed or removed directory entry is durable once the directory is fsynced; without blocking. */
export async function fsyncDirectoryAsync(dir: string): Promise<void> {
  const handle = await openAsync(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces the state atomically and durably: a temporary file, fsynced, renamed
 * into place, the folder fsynced. Used when an id is given or moved.
 */
export function writeFileStateDurably(fs: WriterFs, csvPath: string, state: FileState): void {
  const dir = stateDirOf(dirname(csvPath));
  fs.mkdirSync(dir, { recursive: true });
  const path = statePathOf(csvPath);
  const temporary = `${path}.tmp`;
  const fd = fs.openSync(temporary, 'w');
  try {
    writeAll(fs, fd, Buffer.from(encodeFileState(state)), 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, path);
  fsyncDirectory(fs, dir);
}

/**
 * Rewrites the synced length in place, without an fsync: the line keeps its
 * length, and the rows it vouches for are already fsynced, so a power cut
 * leaves either this length or an older, smaller one (start-up repair sets
 * it again).
 */
export function recordSynced(fs: WriterFs, csvPath: string, state: FileState, synced: number): FileState {
  const next = { id: state.id, created: state.created, synced };
  const fd = fs.openSync(statePathOf(csvPath), 'r+');
  try {
    writeAll(fs, fd, Buffer.from(encodeFileState(next)), 0);
  } catch (error) {
    // Part of the line may be written: put the old one back, or its digits could
    // mix into a length larger than the file, which would read as a new file.
    writeAll(fs, fd, Buffer.from(encodeFileState({ id: state.id, created: state.created, synced: state.synced })), 0);
    throw error;
  } finally {
    fs.closeSync(fd);
  }
  return next;
}

/**
 * The state of the file at `csvPath`, which the caller holds locked and which
 * ends on a row boundary at `size`. Completes an archive move a crash cut
 * short, and gives a file without a state a new id, counting what it holds
 * as synced once `syncFile` has made it so.
 */
export function ensureFileState(fs: WriterFs, csvPath: string, size: number, now: number, syncFile: () => void): FileState {
  let state = readFileState(fs, csvPath);
  if (state?.archivedAs !== undefined) {
    const archivePath = join(dirname(csvPath), state.archivedAs);
    if (exists(fs, archivePath)) {
      // The rename happened: the id belongs to the archive, and this file (if any) is a new one.
      if (readFileState(fs, archivePath)?.id !== state.id) {
        writeFileStateDurably(fs, archivePath, { id: state.id, created: state.created, synced: state.synced });
      }
      state = null;
    } else {
      state = { id: state.id, created: state.created, synced: state.synced };
      writeFileStateDurably(fs, csvPath, state);
    }
  }
  if (state === null) {
    if (size > 0) syncFile();
    state = { id: newFileId(), created: now, synced: size };
    writeFileStateDurably(fs, csvPath, state);
  } else if (state.synced > size) {
    // Shorter than it was vouched for: emptied, replaced or restored from an older copy by hand (the
    // writer itself never cuts fsynced rows). Its offsets would be sent again, so it is a new file.
    if (size > 0) syncFile();
    state = { id: newFileId(), created: now, synced: size };
    writeFileStateDurably(fs, csvPath, state);
  }
  return state;
}

/** Before an archive rename of `csvPath` to `archiveName`: marks the move, durably. */
export function markArchiving(fs: WriterFs, csvPath: string, state: FileState, archiveName: string): void {
  writeFileStateDurably(fs, csvPath, { ...state, archivedAs: archiveName });
}

/**
 * The file opened for reading, or null when it does not exist; any other
 * error (EIO, EMFILE, ELOOP) throws, where existsSync would answer false.
 */
function openIfExists(fs: Pick<WriterFs, 'openSync'>, path: string): number | null {
  try {
    return fs.openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Whether a file exists, strictly (see openIfExists): an archive move must not go the wrong way on EIO. */
function exists(fs: Pick<WriterFs, 'openSync' | 'closeSync'>, path: string): boolean {
  const fd = openIfExists(fs, path);
  if (fd !== null) fs.closeSync(fd);
  return fd !== null;
}
