/**
 * The process logger: pino JSON lines to stdout and to LOG_DIR, rolled by
 * pino-roll at 1 MB with 5 files kept (`sensor-ingest.<n>.log`, and
 * `current.log` linking to the newest).
 *
 * Both destinations are asynchronous sonic-boom streams in this process: a
 * log call only appends to a buffer, and the writes run on libuv's thread
 * pool, so logging never blocks the ingest path. (A pino transport would
 * move the formatting too, but costs a whole extra V8 isolate, about 20 MB,
 * which matters more on a Pi than the microseconds it would save.)
 *
 * A log disk that fails (full, read-only) must not take ingest down with it:
 * stream errors are reported on stderr at most once a minute and otherwise
 * ignored, buffers are bounded, and the flush at exit has a deadline.
 */
import { join } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import pinoRoll from 'pino-roll';
import type { Config } from './config.js';

/**
 * SPEC section 6: 1 MB files, 5 kept. pino-roll's `count` is the rotated files
 * beside the active one; with `removeOtherLogFiles` it also removes files of
 * earlier runs, so LOG_DIR never holds more than 5 however often it restarts.
 */
export const LOG_FILE_SIZE = '1m';
export const LOG_FILES_KEPT = 5;
/** How often the exit's flush looks whether the last lines are out. */
const FLUSH_POLL_MS = 20;
/** Most bytes a destination buffers while its disk or pipe is stuck; past it, lines are dropped. */
const MAX_BUFFER_BYTES = 8 * 1024 * 1024;
const ERROR_REPORT_INTERVAL_MS = 60_000;

/** Secrets that might ride along on a logged object. */
const REDACT = ['req.headers.authorization', 'headers.authorization', 'authorization', 'config.ingestToken', 'config.readToken'];

export interface ProcessLogger {
  readonly logger: Logger;
  /** Writes out what is buffered, giving up after `deadlineMs`: call before process.exit. */
  readonly flush: (deadlineMs: number) => Promise<void>;
}

type SonicBoom = DestinationStream & {
  flush(callback: (error?: Error) => void): void;
  destroy(): void;
  /** sonic-boom's own state: a write under way, and the bytes it still holds. */
  readonly _writing: boolean;
  readonly _len: number;
  readonly destroyed: boolean;
  on(event: 'error', listener: (error: Error) => void): void;
};

export async function createLogger(config: Pick<Config, 'logLevel' | 'logDir'>): Promise<ProcessLogger> {
  const stdout = pino.destination({ dest: 1, sync: false, maxLength: MAX_BUFFER_BYTES }) as unknown as SonicBoom;
  const file = (await pinoRoll({
    file: join(config.logDir, 'sensor-ingest'),
    extension: '.log',
    size: LOG_FILE_SIZE,
    limit: { count: LOG_FILES_KEPT - 1, removeOtherLogFiles: true },
    symlink: true,
    mkdir: true,
    maxLength: MAX_BUFFER_BYTES,
  })) as SonicBoom;
  let reportedAt = Number.NEGATIVE_INFINITY;
  for (const [name, stream] of [
    ['stdout', stdout],
    [config.logDir, file],
  ] as const) {
    stream.on('error', (error: Error) => {
      if (Date.now() - reportedAt < ERROR_REPORT_INTERVAL_MS) return;
      reportedAt = Date.now();
      process.stderr.write(`sensor-ingest: cannot write the log to ${name}: ${error.message}\n`);
    });
  }
  const level = config.logLevel === 'silent' ? 'fatal' : config.logLevel;
  const logger = pino(
    { level: config.logLevel, redact: { paths: REDACT, censor: '[redacted]' } },
    pino.multistream([
      { level, stream: stdout },
      { level, stream: file },
    ]),
  );
  /**
   * Waits until the stream has written all it holds, or gives up at the
   * deadline. sonic-boom's flush(cb) answers at once when minLength is 0,
   * so what is pending is read from its state. A stream that stays stuck (a
   * pipe nobody reads, a hung log disk) is destroyed: pino's exit handler
   * would otherwise retry a synchronous write for ever and hold the exit up.
   */
  const flushOne = async (stream: SonicBoom, deadlineMs: number): Promise<void> => {
    const giveUpAt = Date.now() + deadlineMs;
    while (stream._writing || stream._len > 0) {
      if (stream.destroyed || Date.now() >= giveUpAt) {
        stream.destroy();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, FLUSH_POLL_MS));
    }
  };
  return {
    logger,
    flush: async (deadlineMs) => {
      await Promise.all([flushOne(stdout, deadlineMs), flushOne(file, deadlineMs)]);
    },
  };
}
