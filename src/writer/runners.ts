/**
 * How a batch reaches the file code: on a piscina worker thread in
 * production, or inline on the calling thread where a test wants to inject
 * file-system faults or fake time.
 */
import { Piscina } from 'piscina';
import type { BatchResult, BatchTask } from './task.js';
import type { RowBoundary } from '../storage/repair.js';
import { type Journal, createJournal } from './resume-journal.js';
import type { WorkerData } from './worker/entry.js';
import { type WriteDeps, defaultWriteDeps, writeBatch } from './worker/commit.js';

export interface BatchRunner {
  run(task: BatchTask): Promise<BatchResult>;
  /** Where the writing thread notes each write before it starts; read after the thread dies. */
  readonly journal?: Journal;
  /** Whether the thread that writes is up. */
  isAlive(): boolean;
  close(): Promise<void>;
}

export interface ThreadRunnerOptions {
  /** Files start-up repair left whole, so the thread need not rescan them. */
  readonly boundaries?: readonly RowBoundary[];
  /** The thread's entry; tests substitute one that dies on cue. */
  readonly workerFile?: URL;
  readonly workerData?: Record<string, unknown>;
}

/**
 * The writer thread's heap: the sizes npm start, the systemd units and the PM2
 * config give every isolate with `--max-semi-space-size=2` (a young generation
 * of two 2 MB semi-spaces) and `--max-old-space-size=128`. When node runs
 * with those flags, V8 takes them for this thread too, whatever resourceLimits
 * say (flags win in V8's Heap::ConfigureHeap); these limits apply only when
 * node runs without them (the tests, a bare `node dist/main.js`), and give the
 * thread the same heap then.
 */
const WRITER_HEAP = Object.freeze({ maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 128 });

/** One worker thread, kept for the life of the process; piscina starts a new one if it dies. */
export function createThreadRunner(options: ThreadRunnerOptions = {}): BatchRunner {
  const journal = createJournal();
  const workerData: WorkerData = { ...options.workerData, boundaries: options.boundaries ?? [], journal };
  const pool = new Piscina<BatchTask, BatchResult>({
    filename: (options.workerFile ?? new URL('./worker/entry.js', import.meta.url)).href,
    workerData,
    minThreads: 1,
    maxThreads: 1,
    idleTimeout: Number.POSITIVE_INFINITY,
    resourceLimits: WRITER_HEAP,
  });
  return {
    run: (task) => pool.run(task),
    journal,
    isAlive: () => pool.threads.length > 0,
    close: () => pool.destroy(),
  };
}

/** Runs batches on this thread: for tests, and for tools that need no thread. */
export function createInlineRunner(deps: WriteDeps = defaultWriteDeps): BatchRunner {
  return {
    run: (task) => writeBatch(task, deps),
    ...(deps.journal === undefined ? {} : { journal: deps.journal }),
    isAlive: () => true,
    close: async () => {},
  };
}
