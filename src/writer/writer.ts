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
import type { Config } from '../shared/config.js';
import { QueueFullError, TooLargeForQueueError, WriterClosedError } from '../shared/errors.js';
import type { Reading } from '../storage/reading.js';
import type { BatchResult, BatchTask, FileBatch, FileFailed, FileWritten, Row } from './task.js';
import { retryDelayMs } from './backoff.js';
import { currentFileName } from '../storage/file-names.js';
import { type QueueEntry, RowQueue } from './row-queue.js';
import { JOURNAL_FILES, type ResumePoint, resumePoint } from './resume-journal.js';
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
  | 'writeQueueMaxBytes'
  | 'writeTimeoutSec'
  | 'maxColumns'
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
   * them is done (it never rejects). Throws a WriteRefusedError if they are
   * not taken: WriterClosedError, QueueFullError or TooLargeForQueueError.
   */
  enqueue(stream: string, readings: readonly Reading[], receivedAt: number): Promise<void>;
  /** Rows queued or being written. */
  readonly length: number;
  readonly capacity: number;
  /** Encoded bytes queued or being written, and the most the queue holds (SPEC section 11). */
  readonly bytes: number;
  readonly capacityBytes: number;
  /** Past WRITE_RETRIES failed attempts and not yet recovered, or hung. */
  readonly stalled: boolean;
  /** A write or fsync has been under way for longer than WRITE_TIMEOUT_SEC (SPEC section 11). */
  readonly hung: boolean;
  /** A group commit is under way on the writer thread (which may be blocked in the kernel). */
  readonly writing: boolean;
  /** Whether the writer thread is up. */
  isAlive(): boolean;
  /** SPEC section 8: seconds for `Retry-After`, from queue depth over the measured drain rate. */
  retryAfterSec(): number;
  /** Writes everything queued, ignoring the commit interval; resolves to the rows still unwritten at the deadline. */
  drain(timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Rows and bytes per group commit at most, so the structured clone that carries
 * a commit to the writer thread (and the thread's copy of it) stays small
 * however full the queue is (SPEC section 11's memory budget).
 */
const MAX_ROWS_PER_COMMIT = 20_000;
const MAX_BYTES_PER_COMMIT = 4 * 1024 * 1024;
/** Weight of the newest batch in the drain-rate average. */
const RATE_SMOOTHING = 0.3;

export function createWriter(deps: WriterDeps): Writer {
  const { config, runner, logger, events = {} } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const log = logger.child({ component: 'writer' });
  const queue = new RowQueue(config.writeQueueMaxSize, config.writeQueueMaxBytes);
  const backoff = { baseSec: config.writeBackoffBaseSec, maxSec: config.writeBackoffMaxSec };

  let writing = false;
  /** When the commit under way began, for the hung check. */
  let commitStartedAt = 0;
  let hungTimer: NodeJS.Timeout | undefined;
  let hungLogged = false;
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

  const writeTimeoutMs = config.writeTimeoutSec * 1000;
  const isHung = (): boolean => writing && now() - commitStartedAt >= writeTimeoutMs;
  const isStalled = (): boolean => isHung() || [...failing.values()].some((file) => file.failures > config.writeRetries);
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
    const started = now();
    beginWatch(started);
    lastCommitAt = started;
    const entries = queue.take(MAX_ROWS_PER_COMMIT, JOURNAL_FILES, isDue, MAX_BYTES_PER_COMMIT);
    const task: BatchTask = { seq: ++taskSeq, dataDir: config.dataDir, maxColumns: config.maxColumns, files: groupByFile(entries) };
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
    endWatch(); // a hang has its own pair of log lines
    const wasStalled = isStalled();

    // Only a file with an ok outcome counts as written; one without any outcome is retried.
    // Of a written file, its leading rows: the rest were deferred to the next commit (MAX_COLUMNS).
    const rowsLeftToSettle = new Map<string, number>();
    let rowsWritten = 0;
    for (const outcome of result.files) {
      if (outcome.ok) {
        rowsWritten += outcome.rows;
        rowsLeftToSettle.set(outcome.fileName, outcome.rows);
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
      const left = rowsLeftToSettle.get(entry.fileName) ?? 0;
      if (left < entry.rows.length) return false;
      rowsLeftToSettle.set(entry.fileName, left - entry.rows.length);
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

  /**
   * Marks a commit under way and watches it: one still unfinished after
   * WRITE_TIMEOUT_SEC (a write blocked in the kernel on a dead disk) makes the
   * writer stalled until it returns, and says so once.
   */
  function beginWatch(at: number): void {
    writing = true;
    commitStartedAt = at;
    hungTimer = setTimeout(() => {
      hungLogged = true;
      log.warn({ rows: queue.length, seconds: config.writeTimeoutSec, hung: true }, 'writer stalled');
    }, writeTimeoutMs);
    hungTimer.unref();
  }

  function endWatch(): void {
    writing = false;
    clearTimeout(hungTimer);
    if (hungLogged) log.info({ rows: queue.length, seconds: Math.round((now() - commitStartedAt) / 1000) }, 'writer recovered');
    hungLogged = false;
  }

  function reportWritten(outcome: FileWritten): void {
    if (outcome.repaired !== undefined) {
      log.warn({ file: outcome.fileName, partial: outcome.repaired.partialFile, bytes: outcome.repaired.bytes }, 'repaired cut row');
    }
    if (outcome.archivedAs !== undefined) {
      log.warn(
        { file: outcome.fileName, archive: outcome.archivedAs, added: outcome.addedColumns, ...(outcome.reset ? { reset: true } : {}) },
        'csv schema changed',
      );
    }
    if (outcome.resumedRows !== undefined) {
      log.warn({ file: outcome.fileName, rows: outcome.resumedRows }, 'rows found written by a writer thread that died');
    }
    if (outcome.stateError !== undefined) {
      log.warn({ file: outcome.fileName, err: outcome.stateError }, 'file state not kept; forwarding waits for the next write');
    }
    events.fileWritten?.(outcome);
  }

  /** Each file's rows in order, with the size of each request, which goes whole into one file. */
  function groupByFile(entries: readonly QueueEntry[]): FileBatch[] {
    const byFile = new Map<string, { rows: Row[]; requests: number[] }>();
    for (const entry of entries) {
      const file = byFile.get(entry.fileName);
      if (file === undefined) {
        byFile.set(entry.fileName, { rows: [...entry.rows], requests: [entry.rows.length] });
      } else {
        for (const row of entry.rows) file.rows.push(row);
        file.requests.push(entry.rows.length);
      }
    }
    return [...byFile].map(([fileName, { rows, requests }]) => {
      const resume = resumePoints.get(fileName);
      return { fileName, rows, requests, ...(resume === undefined ? {} : { resume }) };
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
      if (closed) throw new WriterClosedError(retryAfterSec());
      const bytes = encodedBytes(readings);
      if (bytes > queue.capacityBytes) {
        // It could never fit, so a 503 "retry later" would be a lie.
        throw new TooLargeForQueueError(
          `the request's rows take about ${bytes} bytes, more than the write queue holds (WRITE_QUEUE_MAX_BYTES ${queue.capacityBytes})`,
        );
      }
      if (!queue.canTake(readings.length, bytes)) {
        throw new QueueFullError(
          queue.canTake(readings.length)
            ? `the write queue is full (${queue.bytes} of ${queue.capacityBytes} bytes, WRITE_QUEUE_MAX_BYTES); retry later`
            : `the write queue is full (${queue.length} of ${queue.capacity} rows); retry later`,
          retryAfterSec(),
        );
      }
      const rows: Row[] = readings.map((reading) => ({ receivedAt, columns: reading.columns, cells: reading.cells }));
      const fileName = currentFileName(stream, receivedAt, config.csvRotate);
      return new Promise<void>((settle) => {
        queue.push({ fileName, stream, rows, bytes, settle });
        kick();
      });
    },
    get length() {
      return queue.length;
    },
    capacity: queue.capacity,
    get bytes() {
      return queue.bytes;
    },
    capacityBytes: queue.capacityBytes,
    get stalled() {
      return isStalled();
    },
    get hung() {
      return isHung();
    },
    get writing() {
      return writing;
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
      clearTimeout(hungTimer);
      await committing; // a batch being written finishes; nothing new starts
      await runner.close();
    },
  };
}

/** The length of received_at and the row's line end, in bytes. */
const ROW_OVERHEAD_BYTES = 25;
/** What a queued cell costs in memory besides its text (a string, its slots in two arrays, the parsed value it came from), as measured: about 64 bytes. */
const CELL_OVERHEAD_BYTES = 64;

/**
 * About the bytes the readings take as queued rows, for the queue's byte
 * bound: every cell in UTF-8 with the comma after it (as encoded, quoting
 * aside), each column name, and what each cell costs in memory besides its
 * text. A reading of 1,000 long nested keys and empty cells is small on disk
 * but not in memory, and the bound is there to keep memory (SPEC section 11).
 * Linear in the request's size, like everything else done per request.
 */
export function encodedBytes(readings: readonly Reading[]): number {
  let bytes = 0;
  for (const reading of readings) {
    bytes += ROW_OVERHEAD_BYTES;
    for (const cell of reading.cells) bytes += Buffer.byteLength(cell) + 1 + CELL_OVERHEAD_BYTES;
    for (const column of reading.columns) bytes += Buffer.byteLength(column);
  }
  return bytes;
}
