/**
 * The write journal: before each file's write, the writer thread notes where
 * the rows start and in which file (inode), in memory it shares with the main
 * thread (a SharedArrayBuffer). If the thread dies before it reports, the
 * main thread still knows where that batch's rows went, and the retry skips
 * the rows that are already there instead of writing them twice.
 *
 * Layout: [task seq, then per file of the task: inode, rows start offset,
 * rows skipped, and the same three for `was` (-1 when there is none)].
 * Pure: imported by the worker thread.
 */
export const JOURNAL_FILES = 256;

/** Where a crashed attempt started writing one file's rows. */
export interface ResumePoint {
  readonly ino: number;
  readonly rowsStart: number;
  /**
   * The batch's leading rows that are not at `rowsStart` because they are
   * already in an earlier file (an archive-and-widen that resumed them left
   * them in the archive): written, and counted as found.
   */
  readonly skip?: number;
  /**
   * For the new file of an archive-and-widen: where the batch's rows were
   * before it, while the renames are under way. If the old file is still
   * current (the renames never happened), that point holds.
   */
  readonly was?: ResumePoint;
}

const FIELDS = 6;

export type Journal = Float64Array;

export function createJournal(): Journal {
  return new Float64Array(new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * (1 + FIELDS * JOURNAL_FILES)));
}

/** Marks the start of a task: no file written yet. */
export function beginTask(journal: Journal, seq: number): void {
  journal.fill(-1);
  journal[0] = seq;
}

/** Notes, just before the write, where file `index` of the task gets its rows. */
export function noteWrite(journal: Journal, index: number, point: ResumePoint): void {
  if (index >= JOURNAL_FILES) return;
  const at = 1 + FIELDS * index;
  journal[at] = point.ino;
  journal[at + 1] = point.rowsStart;
  journal[at + 2] = point.skip ?? 0;
  journal[at + 3] = point.was?.ino ?? -1;
  journal[at + 4] = point.was?.rowsStart ?? -1;
  journal[at + 5] = point.was?.skip ?? 0;
}

/** The resume point of file `index` of task `seq`, if the thread got as far as its write. */
export function resumePoint(journal: Journal, seq: number, index: number): ResumePoint | undefined {
  if (journal[0] !== seq || index >= JOURNAL_FILES) return undefined;
  const at = 1 + FIELDS * index;
  const point = (ino: number, rowsStart: number, skip: number): ResumePoint => ({ ino, rowsStart, ...(skip > 0 ? { skip } : {}) });
  const rowsStart = journal[at + 1] as number;
  if (rowsStart < 0) return undefined;
  const wasStart = journal[at + 4] as number;
  return {
    ...point(journal[at] as number, rowsStart, journal[at + 2] as number),
    ...(wasStart < 0 ? {} : { was: point(journal[at + 3] as number, wasStart, journal[at + 5] as number) }),
  };
}

/** The point that describes `ino` (the file now current): the point itself, or the one it replaced. */
export function pointFor(point: ResumePoint | undefined, ino: number): ResumePoint | undefined {
  if (point?.ino === ino) return point;
  return point?.was?.ino === ino ? point.was : undefined;
}
