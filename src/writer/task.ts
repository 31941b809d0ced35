/**
 * The messages between the main thread and the writer thread. Plain data,
 * because they cross a worker boundary by structured clone.
 */

import type { CsvRow } from '../storage/csv.js';
import type { ResumePoint } from './resume-journal.js';

/** One row to append: when it was received, and its columns and cell texts. */
export type Row = CsvRow;

/** The rows bound for one file, in acceptance order. */
export interface FileBatch {
  readonly fileName: string;
  readonly rows: readonly Row[];
  /**
   * How many rows each request holds, in order (their sum is `rows.length`);
   * absent, all rows are one request. A request's rows always go whole into
   * one file (SPEC section 11).
   */
  readonly requests?: readonly number[];
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
  /** SPEC section 11: most columns a file's header holds (besides received_at); absent, no limit. */
  readonly maxColumns?: number;
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
  /** Set when widening would have passed MAX_COLUMNS: the new file starts with the request's own columns. */
  readonly reset?: true;
  /**
   * Rows of the batch's last requests left for the next commit: they would
   * have passed MAX_COLUMNS in the file this commit wrote, and the next one
   * starts a file of their own. Not a failure.
   */
  readonly deferredRows?: number;
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
