/**
 * The messages between the main thread and the writer thread. Plain data,
 * because they cross a worker boundary by structured clone.
 */

import type { CsvRow } from '../csv.js';
import type { ResumePoint } from './write-journal.js';

/** One row to append: when it was received, and its columns and cell texts. */
export type Row = CsvRow;

/** The rows bound for one file, in acceptance order. */
export interface FileBatch {
  readonly fileName: string;
  readonly rows: readonly Row[];
  /**
   * Set when a thread died while writing these rows: where its write began.
   * Rows already there are not written again.
   */
  readonly resume?: ResumePoint;
}

/** One group commit: every file's rows, each file locked, written once and fsynced once. */
export interface BatchTask {
  /** Numbers the task in the write journal. */
  readonly seq: number;
  readonly dataDir: string;
  readonly files: readonly FileBatch[];
}

export interface FileWritten {
  readonly fileName: string;
  readonly ok: true;
  readonly rows: number;
  readonly bytes: number;
  /** The file was started by this write (and its header written). */
  readonly created: boolean;
  readonly fsyncSeconds: number;
  /** Set when a new key archived the old file (SPEC section 4). */
  readonly archivedAs?: string;
  readonly addedColumns?: readonly string[];
  /** Set when a cut row left by a crashed writer was moved aside first. */
  readonly repaired?: { readonly partialFile: string; readonly bytes: number };
  /** Rows a dead thread had already written, found in place and not written again. */
  readonly resumedRows?: number;
  /** Where a dead attempt's later rows would be, when all of these were found in place. */
  readonly resumeNext?: ResumePoint;
  /** The file's id (section 10) and the length now known fsynced, when its state could be kept. */
  readonly fileId?: string;
  readonly end?: number;
  /** The id and final length of the file an archive rename retired. */
  readonly archived?: { readonly id: string; readonly end: number };
  /** Why the file's state could not be kept (the rows are written all the same). */
  readonly stateError?: string;
}

export interface FileFailed {
  readonly fileName: string;
  readonly ok: false;
  /** The error's code (`ENOSPC`, `ELOCKED`, …). */
  readonly code: string;
  readonly message: string;
  /** Set when rows may be in the file all the same (a cut-back that failed): where they begin. */
  readonly resume?: ResumePoint;
}

export type FileOutcome = FileWritten | FileFailed;

export interface BatchResult {
  readonly files: readonly FileOutcome[];
}
