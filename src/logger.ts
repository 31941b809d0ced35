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

/** Secrets that might ride along on a logged object. */
const REDACT = ['req.headers.authorization', 'headers.authorization', 'authorization', 'config.ingestToken', 'config.readToken'];

export interface ProcessLogger {
  readonly logger: Logger;
  /** Writes out what is buffered, synchronously: call before process.exit. */
  flushSync(): void;
}

type SonicBoom = DestinationStream & { flushSync(): void };

export async function createLogger(config: Pick<Config, 'logLevel' | 'logDir'>): Promise<ProcessLogger> {
  const stdout = pino.destination({ dest: 1, sync: false }) as SonicBoom;
  const file = (await pinoRoll({
    file: join(config.logDir, 'sensor-ingest'),
    extension: '.log',
    size: LOG_FILE_SIZE,
    limit: { count: LOG_FILES_KEPT - 1, removeOtherLogFiles: true },
    symlink: true,
    mkdir: true,
  })) as SonicBoom;
  const level = config.logLevel;
  const logger = pino(
    { level, redact: { paths: REDACT, censor: '[redacted]' } },
    pino.multistream([
      { level: level === 'silent' ? 'fatal' : level, stream: stdout },
      { level: level === 'silent' ? 'fatal' : level, stream: file },
    ]),
  );
  const flushSync = (): void => {
    for (const stream of [stdout, file]) {
      try {
        stream.flushSync();
      } catch {
        // Not open yet, or already closed: nothing buffered to lose.
      }
    }
  };
  process.once('exit', flushSync);
  return { logger, flushSync };
}
