/**
 * The process logger: pino JSON lines to stdout and to LOG_DIR, rolled by
 * pino-roll at 1 MB with 5 files kept (`sensor-ingest.<n>.log`, and
 * `current.log` linking to the newest). Both run in pino's transport thread,
 * so file writes never block the ingest path.
 */
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
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

export function createLogger(config: Pick<Config, 'logLevel' | 'logDir'>): Logger {
  const transport = pino.transport({
    targets: [
      { target: 'pino/file', level: config.logLevel, options: { destination: 1 } },
      {
        target: 'pino-roll',
        level: config.logLevel,
        options: {
          file: join(config.logDir, 'sensor-ingest'),
          extension: '.log',
          size: LOG_FILE_SIZE,
          limit: { count: LOG_FILES_KEPT - 1, removeOtherLogFiles: true },
          symlink: true,
          mkdir: true,
        },
      },
    ],
  });
  return pino({ level: config.logLevel, redact: { paths: REDACT, censor: '[redacted]' } }, transport);
}
