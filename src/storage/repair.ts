/**
 * Repair of a cut last row (SPEC section 5). Power loss can leave a CSV file
 * ending part-way through a row; appending to it would glue the next row onto
 * the stump. The stump is moved to `<file>.partial-<UTC timestamp>` and the
 * file is cut back to its last complete row.
 *
 * A row ends at a `\n` outside quotes. RFC 4180 doubles quotes inside quoted
 * fields, so "outside quotes" is "after an even number of `"` bytes": one pass
 * over the file finds the last such `\n`, however many quoted newlines it has.
 */
import { dirname, join } from 'node:path';
import { endOfLastRow } from './csv.js';
import { type Rotation, isCurrentFileOf, partialFileName } from './file-names.js';
import { ensureFileState, recordSynced } from './file-state.js';
import { type WriterFs, fsyncDirectory } from './fs.js';

export interface StartupRepairOptions {
  readonly dataDir: string;
  readonly streams: readonly string[];
  readonly rotate: Rotation;
  readonly fs: WriterFs;
  /** Takes a file's lock, waiting out a holder (a stale lock is taken over after 10 s). */
  readonly lock: (path: string) => Promise<() => Promise<void>>;
  readonly now: () => number;
}

/** A file known to end on a row boundary at `end`: the writer need not rescan what lies before. */
export interface RowBoundary {
  readonly path: string;
  readonly ino: number;
  readonly end: number;
}

export interface StartupRepair {
  readonly repairs: RepairResult[];
  /** Every current file as it was left, whole. */
  readonly boundaries: RowBoundary[];
}

/**
 * SPEC section 9: each stream's current file, at start-up, under its lock,
 * before the port opens. Archives are left alone.
 */
export async function repairCurrentFiles(options: StartupRepairOptions): Promise<StartupRepair> {
  const { dataDir, streams, rotate, fs } = options;
  // Each stream's current file: with daily rotation, its newest day (only that one was being written).
  const present = fs.readdirSync(dataDir);
  const names = streams.flatMap((stream) => present.filter((name) => isCurrentFileOf(stream, name, rotate)).sort().slice(-1));
  const repairs: RepairResult[] = [];
  const boundaries: RowBoundary[] = [];
  for (const name of names.sort()) {
    const path = join(dataDir, name);
    const release = await options.lock(path);
    try {
      const result = repairCutRow(fs, dataDir, name, options.now());
      if (result !== null) repairs.push(result);
      const fd = fs.openSync(path, 'r');
      try {
        const { ino, size } = fs.fstatSync(fd);
        boundaries.push({ path, ino, end: size });
        vouchForWholeFile(fs, fd, path, size, options.now());
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      await release().catch(() => {});
    }
  }
  return { repairs, boundaries };
}

/**
 * A crash between a write and its fsync leaves whole rows the file's state
 * does not vouch for yet (section 10): fsync them and say so, or the
 * forwarder would not send them until the stream's next write.
 */
function vouchForWholeFile(fs: WriterFs, fd: number, path: string, size: number, now: number): void {
  try {
    fs.fsyncSync(fd);
    const state = ensureFileState(fs, path, size, now, () => {});
    if (state.synced < size) recordSynced(fs, path, state, size);
  } catch {
    // Not fatal: the next write under the lock keeps the state, and until then the forwarder waits.
  }
}

export interface RepairResult {
  readonly fileName: string;
  readonly partialFile: string;
  /** Bytes moved out of the file. */
  readonly bytes: number;
}

/**
 * Cuts `dataDir/fileName` back to its last complete row. The caller holds the
 * file's lock. Returns null when the file is whole or missing.
 */
export function repairCutRow(fs: WriterFs, dataDir: string, fileName: string, now: number, scanFrom = 0): RepairResult | null {
  const path = join(dataDir, fileName);
  if (!fs.existsSync(path)) return null;
  const fd = fs.openSync(path, 'r+');
  try {
    const size = fs.fstatSync(fd).size;
    const end = endOfLastRow(fs, fd, size, Math.min(scanFrom, size));
    if (end === size) return null;

    const stump = Buffer.alloc(size - end);
    fs.readSync(fd, stump, 0, stump.length, end);
    const partialFile = freePartialName(fs, dataDir, fileName, now);
    const partialFd = fs.openSync(join(dataDir, partialFile), 'wx');
    try {
      fs.writeSync(partialFd, stump, 0, stump.length);
      fs.fsyncSync(partialFd);
    } finally {
      fs.closeSync(partialFd);
    }
    fs.ftruncateSync(fd, end);
    fs.fsyncSync(fd);
    fsyncDirectory(fs, dirname(path));
    return { fileName, partialFile, bytes: stump.length };
  } finally {
    fs.closeSync(fd);
  }
}

function freePartialName(fs: WriterFs, dataDir: string, fileName: string, now: number): string {
  for (let attempt = 0; ; attempt++) {
    const name = partialFileName(fileName, now, attempt);
    if (!fs.existsSync(join(dataDir, name))) return name;
  }
}
