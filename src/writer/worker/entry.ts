/**
 * The piscina task that runs on the writer thread: one group commit.
 * Imports only the file-writing code (no Express, no prom-client), so the
 * thread starts fast and stays small.
 */
import { workerData } from 'piscina';
import type { BatchResult, BatchTask } from '../task.js';
import type { RowBoundary } from '../../storage/repair.js';
import { rememberRowBoundaries } from './file-memory.js';
import { type WriteDeps, defaultWriteDeps, writeBatch } from './commit.js';
import type { Journal } from '../resume-journal.js';

/** What the main thread hands the writer thread when it starts it. */
export interface WorkerData {
  /** Files start-up repair verified whole. */
  readonly boundaries: readonly RowBoundary[];
  /** The write journal, shared with the main thread. */
  readonly journal: Journal;
}

const data = workerData as WorkerData;
rememberRowBoundaries(data.boundaries);
const deps: WriteDeps = { ...defaultWriteDeps, journal: data.journal };

export default function runWriteTask(task: BatchTask): Promise<BatchResult> {
  return writeBatch(task, deps);
}
