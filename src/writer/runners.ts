/**
 * How a batch reaches the file code: on a piscina worker thread in
 * production, or inline on the calling thread where a test wants to inject
 * file-system faults or fake time.
 */
import { Piscina } from 'piscina';
import type { BatchResult, BatchTask } from './batch.js';
import type { RowBoundary } from './repair.js';
import { type WriteDeps, defaultWriteDeps, writeBatch } from './write-batch.js';

export interface BatchRunner {
  run(task: BatchTask): Promise<BatchResult>;
  /** Whether the thread that writes is up. */
  isAlive(): boolean;
  close(): Promise<void>;
}

/**
 * One worker thread, kept for the life of the process. `boundaries` are the
 * files start-up repair left whole, so the thread need not rescan them.
 */
export function createThreadRunner(boundaries: readonly RowBoundary[] = [], workerFile = new URL('./worker.js', import.meta.url)): BatchRunner {
  const pool = new Piscina<BatchTask, BatchResult>({
    filename: workerFile.href,
    workerData: { boundaries },
    minThreads: 1,
    maxThreads: 1,
    idleTimeout: Number.POSITIVE_INFINITY,
  });
  return {
    run: (task) => pool.run(task),
    isAlive: () => pool.threads.length > 0,
    close: () => pool.destroy(),
  };
}

/** Runs batches on this thread: for tests, and for tools that need no thread. */
export function createInlineRunner(deps: WriteDeps = defaultWriteDeps): BatchRunner {
  return {
    run: (task) => writeBatch(task, deps),
    isAlive: () => true,
    close: async () => {},
  };
}
