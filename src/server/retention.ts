/**
 * Retention (SPEC section 12), for the ingest server and the collector: at
 * start-up and then every minute, the closed files that RETENTION_DAYS or
 * RETENTION_MAX_BYTES give up are removed, each under its lock, with its file
 * state, and an INFO `retention removed file` (`file`, `bytes`, `reason`).
 * A file whose rows JetStream has not acknowledged is never removed: while
 * one holds retention back, a WARN `retention waiting for forwarder`, at most
 * once an hour. Which files go is decided by storage/retention.ts.
 *
 * All file work is asynchronous: a slow disk never holds up the event loop.
 */
import { stat, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { newestRowMs } from '../storage/compress.js';
import { fsyncDirectoryAsync, statePathOf } from '../storage/file-state.js';
import type { LockFile } from '../storage/lock.js';
import { type RemovalReason, type RetainedFile, type RetentionRules, planRetention } from '../storage/retention.js';
import type { ListedFile } from '../storage/stream-files.js';

export const RETENTION_INTERVAL_MS = 60_000;
/** While forwarding holds retention back, the WARN comes again at most this often. */
export const RETENTION_WAIT_WARN_MS = 3_600_000;

export type { ListedFile } from '../storage/stream-files.js';

export interface RetentionDeps {
  readonly rules: RetentionRules;
  readonly logger: Logger;
  readonly now: () => number;
  /** The program's stream files (the ingest server's streams, the collector's site folders). */
  readonly listFiles: () => Promise<readonly ListedFile[]>;
  /** Whether a closed file's rows are safe elsewhere (always, without forwarding). */
  readonly safe: (path: string) => boolean;
  readonly lock: LockFile;
  readonly onRemoved?: (reason: RemovalReason, bytes: number) => void;
  /** Run every RETENTION_INTERVAL_MS (off in tests that call run()). */
  readonly watch?: boolean;
}

export interface Retention {
  /** One pass; a pass already under way is waited for instead of starting another. */
  run(): Promise<void>;
  close(): void;
}

export function createRetention(deps: RetentionDeps): Retention {
  const log = deps.logger.child({ component: 'retention' });
  const enabled = deps.rules.days !== undefined || deps.rules.maxBytes !== undefined;
  let warnedWaitingAt = Number.NEGATIVE_INFINITY;
  let running: Promise<void> | undefined;

  async function pass(): Promise<void> {
    const files: RetainedFile[] = [];
    for (const { path, closed } of await deps.listFiles()) {
      const info = await stat(path).catch(() => null);
      if (info === null) continue; // gone since the listing
      files.push({ path, bytes: info.size, closed, newestMs: await newestRowMs(path, info.mtimeMs), held: closed && !deps.safe(path) });
    }
    const now = deps.now();
    const plan = planRetention(files, deps.rules, now);
    for (const { file, reason } of plan.remove) await remove(file, reason);
    if (plan.waiting.length > 0 && now - warnedWaitingAt >= RETENTION_WAIT_WARN_MS) {
      warnedWaitingAt = now;
      log.warn({ files: plan.waiting.length, oldest: basename(plan.waiting[0]?.path ?? '') }, 'retention waiting for forwarder');
    }
  }

  async function remove(file: RetainedFile, reason: RemovalReason): Promise<void> {
    try {
      const release = await deps.lock(file.path);
      try {
        await unlink(file.path);
        // The state goes after the file: a crash between leaves a state without its file, which nothing reads.
        await unlink(statePathOf(file.path)).catch(() => {});
        await fsyncDirectoryAsync(dirname(file.path));
      } finally {
        await release().catch(() => {});
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // removed by a peer on this DATA_DIR
      log.warn({ file: basename(file.path), err: (error as Error).message }, 'retention could not remove file');
      return;
    }
    log.info({ file: basename(file.path), bytes: file.bytes, reason }, 'retention removed file');
    deps.onRemoved?.(reason, file.bytes);
  }

  const run = (): Promise<void> => {
    if (!enabled) return Promise.resolve();
    running ??= pass()
      .catch((error: unknown) => log.warn({ err: (error as Error).message }, 'retention pass failed'))
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  let timer: NodeJS.Timeout | undefined;
  if (enabled && (deps.watch ?? true)) {
    void run();
    timer = setInterval(() => void run(), RETENTION_INTERVAL_MS);
    timer.unref();
  }
  return {
    run,
    close: () => clearInterval(timer),
  };
}
