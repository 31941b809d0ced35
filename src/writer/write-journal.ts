/**
 * The write journal: before each file's write, the writer thread notes where
 * the rows start and in which file (inode), in memory it shares with the main
 * thread (a SharedArrayBuffer). If the thread dies before it reports, the
 * main thread still knows where that batch's rows went, and the retry skips
 * the rows that are already there instead of writing them twice.
 *
 * Layout: [task seq, then per file of the task: inode, rows start offset].
 * Pure: imported by the worker thread.
 */
export const JOURNAL_FILES = 256;

/** Where a crashed attempt started writing one file's rows. */
export interface ResumePoint {
  readonly ino: number;
  readonly rowsStart: number;
}

export type Journal = Float64Array;

export function createJournal(): Journal {
  return new Float64Array(new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * (1 + 2 * JOURNAL_FILES)));
}

/** Marks the start of a task: no file written yet. */
export function beginTask(journal: Journal, seq: number): void {
  journal.fill(-1);
  journal[0] = seq;
}

/** Notes, just before the write, where file `index` of the task gets its rows. */
export function noteWrite(journal: Journal, index: number, point: ResumePoint): void {
  if (index >= JOURNAL_FILES) return;
  journal[1 + 2 * index] = point.ino;
  journal[2 + 2 * index] = point.rowsStart;
}

/** The resume point of file `index` of task `seq`, if the thread got as far as its write. */
export function resumePoint(journal: Journal, seq: number, index: number): ResumePoint | undefined {
  if (journal[0] !== seq || index >= JOURNAL_FILES) return undefined;
  const rowsStart = journal[2 + 2 * index] as number;
  return rowsStart < 0 ? undefined : { ino: journal[1 + 2 * index] as number, rowsStart };
}
