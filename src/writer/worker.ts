/**
 * The piscina task that runs on the writer thread: one group commit.
 * Imports only the file-writing code (no Express, no prom-client), so the
 * thread starts fast and stays small.
 */
import { workerData } from 'piscina';
import type { BatchResult, BatchTask } from './batch.js';
import type { RowBoundary } from './repair.js';
import { rememberRowBoundaries, writeBatch } from './write-batch.js';

// What start-up repair verified, handed over when the thread starts.
rememberRowBoundaries((workerData as { boundaries?: RowBoundary[] } | undefined)?.boundaries ?? []);

export default function runWriteTask(task: BatchTask): Promise<BatchResult> {
  return writeBatch(task);
}
