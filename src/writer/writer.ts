/**
 * The main-thread side of the writer: takes accepted rows onto the bounded
 * queue and feeds the writer thread one group commit at a time.
 *
 *   enqueue ─► RowQueue ─► (commit interval) ─► runner.run(batch) ─► outcome per file
 *                 ▲                                                    │
 *                 └──── a failed file's rows stay in their place, ◄────┘
 *                       that file backs off (other files go on); past
 *                       WRITE_RETRIES: stalled, retried every
 *                       WRITE_BACKOFF_MAX_SEC, never dropped
 *
 * While one batch is written, new rows gather for the next (group commit).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ServiceUnavailableError } from '../errors.js';
import type { Reading } from '../reading.js';
import type { BatchResult, BatchTask, FileBatch, FileFailed, FileWritten, Row } from './batch.js';
import { retryDelayMs } from './backoff.js';
import { currentFileName } from './file-names.js';
import { type QueueEntry, RowQueue } from './row-queue.js';
import { JOURNAL_FILES, type ResumePoint, resumePoint } from './write-journal.js';
import type { BatchRunner } from './runners.js';

export type WriterConfig = Pick<
  Config,
  | 'dataDir'
  | 'csvRotate'
  | 'writeQueueMaxSize'
  | 'writeRetries'
  | 'writeBackoffBaseSec'
  | 'writeBackoffMaxSec'
  | 'commitIntervalMs'
>;

/** What the writer reports, for metrics. Every method is optional to implement. */
export interface WriterEvents {
  fileWritten?(outcome: FileWritten): void;
  writeFailed?(outcome: FileFailed): void;
}

export interface WriterDeps {
  readonly config: WriterConfig;
  readonly runner: BatchRunner;
  readonly logger: Logger;
  readonly events?: WriterEvents;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface Writer {
  /**
   * Queues one request's rows, all or none. Resolves once the fsync covering
   * them is done (it never rejects); throws a 503 error if they do not fit.
   */
  enqueue(stream: string, readings: readonly Reading[], receivedAt: number): Promise<void>;
  /** Rows queued or being written. */
  readonly length: number;
  readonly capacity: number;
  /** Past WRITE_RETRIES failed attempts and not yet recovered. */
  readonly stalled: boolean;
  /** Whether the writer thread is up. */
  isAlive(): boolean;
  /** SPEC section 8: seconds for `Retry-After`, from queue depth over the measured drain rate. */
  retryAfterSec(): number;
  /** Writes everything queued, ignoring the commit interval; resolves to the rows still unwritten at the deadline. */
  drain(timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/** Rows per group commit at most, so one structured-clone message stays small. */
const MAX_ROWS_PER_COMMIT = 20_000;
/** Weight of the newest batch in the drain-rate average. */
const RATE_SMOOTHING = 0.3;

export function createWriter(deps: WriterDeps): Writer {
  const { config, runner, logger, events = {} } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const log = logger.child({ component: 'writer' });
  const queue = new RowQueue(config.writeQueueMaxSize);
  const backoff = { baseSec: config.writeBackoffBaseSec, maxSec: config.writeBackoffMaxSec };

  let writing = false;
  /** The commit under way, so close() can wait for it. */
  let committing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Number.POSITIVE_INFINITY;
  let draining = false;
  let closed = false;
  let lastCommitAt = Number.NEGATIVE_INFINITY;
  let drainRowsPerSec = 0;
  let taskSeq = 0;
  /** Per failing file: failed attempts in a row, and when to try it again. Other files go on. */
  const failing = new Map<string, { failures: number; retryAt: number }>();
  /** Per file: where a thread that died began writing its rows, until they are written. */
  const resumePoints = new Map<string, ResumePoint>();
  let emptyWaiters: Array<() => void> = [];

  const isStalled = (): boolean => [...failing.values()].some((file) => file.failures > config.writeRetries);
  const isDue = (fileName: string): boolean => (failing.get(fileName)?.retryAt ?? 0) <= now();

  function clearTimer(): void {
    clearTimeout(timer);
    timer = undefined;
    timerAt = Number.POSITIVE_INFINITY;
  }

  /**
   * Starts the next commit when one is due, or sets the timer for when it
   * will be: after COMMIT_INTERVAL_MS (not while draining), or at the
   * earliest retry of a failing file if only failing files have rows waiting.
   */
  function kick(): void {
    if (writing || closed) return;
    const at = now();
    let wakeAt: number;
    if (queue.hasWaiting(isDue)) {
      wakeAt = draining ? at : Math.max(at, lastCommitAt + config.commitIntervalMs);
    } else {
      wakeAt = Math.min(...[...queue.waitingFiles()].map((fileName) => failing.get(fileName)?.retryAt ?? Number.POSITIVE_INFINITY));
      if (wakeAt === Number.POSITIVE_INFINITY) return;
    }
    if (wakeAt <= at) {
      clearTimer();
      committing = commit();
    } else if (wakeAt < timerAt) {
      clearTimer();
      timerAt = wakeAt;
      timer = setTimeout(() => {
        timer = undefined;
        timerAt = Number.POSITIVE_INFINITY;
        kick();
      }, wakeAt - at);
      timer.unref();
    }
  }

  async function commit(): Promise<void> {
    writing = true;
    const started = now();
    lastCommitAt = started;
    const entries = queue.take(MAX_ROWS_PER_COMMIT, JOURNAL_FILES, isDue);
    const task: BatchTask = { seq: ++taskSeq, dataDir: config.dataDir, files: groupByFile(entries) };
    let result: BatchResult;
    try {
      result = await runner.run(task);
    } catch (error) {
      // The thread itself failed (it died, or could not start): every file failed.
      // The journal tells where it had begun writing, so the retry skips what is there.
      if (runner.journal !== undefined) {
        for (const [index, file] of task.files.entries()) {
          const point = resumePoint(runner.journal, task.seq, index);
          if (point !== undefined) resumePoints.set(file.fileName, point);
        }
      }
      const code = (error as { code?: unknown } | null)?.code;
      const failed = { ok: false as const, code: typeof code === 'string' ? code : 'EWORKER', message: String(error) };
      result = { files: task.files.map((file) => ({ ...failed, fileName: file.fileName })) };
    }
    writing = false;

    const wasStalled = isStalled();
    // Only a file with an ok outcome counts as written; one without any outcome is retried.
    const failedFiles = new Set(task.files.map((file) => file.fileName));
    let rowsWritten = 0;
    for (const outcome of result.files) {
      if (outcome.ok) {
        rowsWritten += outcome.rows;
        failedFiles.delete(outcome.fileName);
        failing.delete(outcome.fileName);
        if (outcome.resumeNext === undefined) resumePoints.delete(outcome.fileName);
        else resumePoints.set(outcome.fileName, outcome.resumeNext);
        reportWritten(outcome);
      } else {
        if (outcome.resume !== undefined) resumePoints.set(outcome.fileName, outcome.resume);
        const file = failing.get(outcome.fileName) ?? { failures: 0, retryAt: 0 };
        file.failures++;
        const delayMs =
          file.failures > config.writeRetries ? config.writeBackoffMaxSec * 1000 : retryDelayMs(file.failures, backoff, random);
        file.retryAt = now() + delayMs;
        failing.set(outcome.fileName, file);
        log.error({ code: outcome.code, file: outcome.fileName, attempt: file.failures, err: outcome.message }, 'write failed');
        events.writeFailed?.(outcome);
      }
    }
    queue.complete((entry) => {
      if (failedFiles.has(entry.fileName)) return false;
      entry.settle();
      return true;
    });
    if (rowsWritten > 0) {
      const rate = rowsWritten / Math.max(0.001, (now() - started) / 1000);
      drainRowsPerSec = drainRowsPerSec === 0 ? rate : drainRowsPerSec * (1 - RATE_SMOOTHING) + rate * RATE_SMOOTHING;
    }
    const stalled = isStalled();
    if (stalled && !wasStalled) log.warn({ rows: queue.length, files: [...failing.keys()] }, 'writer stalled');
    if (!stalled && wasStalled) log.info({ rows: queue.length }, 'writer recovered');
    if (queue.length === 0) {
      const waiters = emptyWaiters;
      emptyWaiters = [];
      for (const resolve of waiters) resolve();
    }
    kick();
  }

  function reportWritten(outcome: FileWritten): void {
    if (outcome.repaired !== undefined) {
      log.warn({ file: outcome.fileName, partial: outcome.repaired.partialFile, bytes: outcome.repaired.bytes }, 'repaired cut row');
    }
    if (outcome.archivedAs !== undefined) {
      log.warn({ file: outcome.fileName, archive: outcome.archivedAs, added: outcome.addedColumns }, 'csv schema changed');
    }
    if (outcome.resumedRows !== undefined) {
      log.warn({ file: outcome.fileName, rows: outcome.resumedRows }, 'rows found written by a writer thread that died');
    }
    if (outcome.stateError !== undefined) {
      log.warn({ file: outcome.fileName, err: outcome.stateError }, 'file state not kept; forwarding waits for the next write');
    }
    events.fileWritten?.(outcome);
  }

  function groupByFile(entries: readonly QueueEntry[]): FileBatch[] {
    const byFile = new Map<string, Row[]>();
    for (const entry of entries) {
      const rows = byFile.get(entry.fileName);
      if (rows === undefined) byFile.set(entry.fileName, [...entry.rows]);
      else for (const row of entry.rows) rows.push(row);
    }
    return [...byFile].map(([fileName, rows]) => {
      const resume = resumePoints.get(fileName);
      return resume === undefined ? { fileName, rows } : { fileName, rows, resume };
    });
  }

  /**
   * SPEC sections 8 and 9: queue depth over the measured drain rate, 1 to 60 s;
   * at least WRITE_BACKOFF_MAX_SEC while a file is failing, since nothing drains then.
   */
  function retryAfterSec(): number {
    const backoffMax = Math.max(1, Math.ceil(config.writeBackoffMaxSec));
    if (drainRowsPerSec === 0) return backoffMax; // nothing measured yet
    const seconds = Math.min(60, Math.max(1, Math.ceil(queue.length / drainRowsPerSec)));
    return failing.size > 0 ? Math.max(seconds, backoffMax) : seconds;
  }

  return {
    enqueue(stream, readings, receivedAt) {
      if (closed) throw new ServiceUnavailableError('the server is shutting down', 'SHUTTING_DOWN', retryAfterSec());
      if (!queue.canTake(readings.length)) {
        throw new ServiceUnavailableError(
          `the write queue is full (${queue.length} of ${queue.capacity} rows); retry later`,
          'QUEUE_FULL',
          retryAfterSec(),
        );
      }
      const rows: Row[] = readings.map((reading) => ({ receivedAt, columns: reading.columns, cells: reading.cells }));
      const fileName = currentFileName(stream, receivedAt, config.csvRotate);
      return new Promise<void>((settle) => {
        queue.push({ fileName, stream, rows, settle });
        kick();
      });
    },
    get length() {
      return queue.length;
    },
    capacity: queue.capacity,
    get stalled() {
      return isStalled();
    },
    isAlive: () => !closed && runner.isAlive(),
    retryAfterSec,
    async drain(timeoutMs) {
      draining = true; // from now on the commit interval is ignored; retry backoffs are not
      kick();
      if (queue.length === 0) return 0;
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => emptyWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          deadline = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(deadline);
      return queue.length;
    },
    async close() {
      closed = true;
      clearTimer();
      await committing; // a batch being written finishes; nothing new starts
      await runner.close();
    },
  };
}
