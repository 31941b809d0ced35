/**
 * The collector's start-up repair (SPEC section 10): a central file that is
 * longer than the collector's journal says ends in rows written but never
 * journaled, so never acked: a crash came in between. They are cut off here,
 * under the file's lock, and JetStream hands them out again.
 */
import { join } from 'node:path';
import type * as nodeFs from 'node:fs';
import { readHeaderRecord } from '../storage/csv.js';
import type { CollectJournal } from './journal.js';
import { NAME } from '../shared/names.js';
import { csvNameOfState, ensureFileState, readFileState, recordSynced, stateDirOf } from '../storage/file-state.js';
import type { LockFile } from '../storage/lock.js';
import type { WriterFs } from '../storage/fs.js';

export interface CutBack {
  readonly file: string;
  /** Bytes cut off the end. */
  readonly bytes: number;
}

export async function cutUnjournaledRows(options: {
  readonly dataDir: string;
  readonly journal: CollectJournal;
  readonly fs: WriterFs & Pick<typeof nodeFs, 'statSync'>;
  readonly lock: LockFile;
  readonly now: () => number;
}): Promise<CutBack[]> {
  const { dataDir, journal, fs } = options;
  const cuts: CutBack[] = [];
  for (const site of fs.readdirSync(dataDir).filter((name) => NAME.test(name)).sort()) {
    const siteDir = join(dataDir, site);
    if (!fs.statSync(siteDir).isDirectory()) continue;
    // Archive moves a crash cut short are completed first, so their archives are known (and cut) below.
    for (const name of filesMidArchive(fs, siteDir)) {
      const path = join(siteDir, name);
      const release = await options.lock(path);
      try {
        completeArchiveMove(fs, path, options.now());
      } finally {
        await release().catch(() => {});
      }
    }
    for (const name of fs.readdirSync(siteDir).filter((entry) => entry.endsWith('.csv')).sort()) {
      const path = join(siteDir, name);
      const release = await options.lock(path);
      try {
        const cut = cutFile(fs, path, journal, options.now());
        if (cut > 0) cuts.push({ file: `${site}/${name}`, bytes: cut });
      } finally {
        await release().catch(() => {});
      }
    }
  }
  return cuts;
}

/** Current files whose state still carries an archive mark (the CSV itself may be missing). */
function filesMidArchive(fs: WriterFs, siteDir: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(stateDirOf(siteDir));
  } catch {
    return [];
  }
  return entries
    .map(csvNameOfState)
    .filter((name): name is string => name !== null && readFileState(fs, join(siteDir, name))?.archivedAs !== undefined)
    .sort();
}

function completeArchiveMove(fs: WriterFs, path: string, now: number): void {
  if (readFileState(fs, path)?.archivedAs === undefined) return;
  if (!fs.existsSync(path)) {
    // Cut short between the renames: the next write creates the file, under the new id given here.
    ensureFileState(fs, path, 0, now, () => {});
    return;
  }
  const fd = fs.openSync(path, 'r');
  try {
    ensureFileState(fs, path, fs.fstatSync(fd).size, now, () => fs.fsyncSync(fd));
  } finally {
    fs.closeSync(fd);
  }
}

/** Cuts one file back to its journaled length; returns the bytes cut. */
function cutFile(fs: WriterFs, path: string, journal: CollectJournal, now: number): number {
  let state = readFileState(fs, path);
  if (state === null) return 0; // never written to by the writer's rules: not ours to cut
  const fd = fs.openSync(path, 'r+');
  try {
    const size = fs.fstatSync(fd).size;
    // Completes an archive rename a crash cut short; a file that thereby turns out new gets its own id.
    if (state.archivedAs !== undefined) state = ensureFileState(fs, path, size, now, () => fs.fsyncSync(fd));
    const end = journal.endOf(state.id) ?? readHeaderRecord(fs, fd, size)?.end ?? 0;
    if (size <= end) return 0;
    fs.ftruncateSync(fd, end);
    fs.fsyncSync(fd);
    if (state.synced > end) recordSynced(fs, path, state, end);
    return size - end;
  } finally {
    fs.closeSync(fd);
  }
}
