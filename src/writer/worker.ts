/**
 * The piscina task that runs on the writer thread: one group commit.
 * Imports only the file-writing code (no Express, no prom-client), so the
 * thread starts fast and stays small.
 */
import type { BatchResult, BatchTask } from './batch.js';
import { writeBatch } from './write-batch.js';

export default function runWriteTask(task: BatchTask): Promise<BatchResult> {
  return writeBatch(task);
}
