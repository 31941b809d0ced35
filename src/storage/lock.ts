/**
 * The lock policy, in one place (SPEC section 9): proper-lockfile's
 * `<path>.lock` directory, `realpath: false` (a file may not exist yet).
 *
 * - A CSV file's lock is held for one group commit (milliseconds) and goes
 *   stale after 10 s: a peer that died holding it does not block for ever.
 * - A process lock (the forwarder's, the collector's) is held for the life of
 *   the process and refreshed while it lives, so that it never goes stale
 *   under a live holder.
 */
import lockfile from 'proper-lockfile';

/** Takes a file's lock and resolves to its release. */
export type LockFile = (path: string) => Promise<() => Promise<void>>;

/** SPEC section 9: a file lock is stale after 10 s. */
export const LOCK_OPTIONS = Object.freeze({ realpath: false, stale: 10_000, retries: 0 });

/**
 * The writer's lock: a peer process holds a file's lock for one batch (a few
 * milliseconds), so wait up to about a second before counting a failed
 * attempt; a lock held longer (a stuck or foreign holder) fails with ELOCKED.
 */
export const lockForCommit: LockFile = (path) =>
  lockfile.lock(path, {
    ...LOCK_OPTIONS,
    retries: { retries: 20, factor: 1.3, minTimeout: 2, maxTimeout: 50, randomize: true },
    // A lock we hold for milliseconds cannot go stale; if its refresh ever
    // fails, the default handler would throw inside the worker thread.
    onCompromised: () => {},
  });

/** For start-up repair: wait for a live holder (15 s), take over a dead one's lock once it is stale. */
export const lockWaitingForHolder: LockFile = (path) =>
  lockfile.lock(path, {
    ...LOCK_OPTIONS,
    retries: { retries: 60, factor: 1, minTimeout: 250, maxTimeout: 250 },
    onCompromised: () => {},
  });

export interface ProcessLockOptions {
  /** A holder that stops refreshing (it was killed) loses the lock after this long. */
  readonly staleMs: number;
  /** How many times to try again, a second apart, before failing with ELOCKED. */
  readonly retries: number;
  /** The lock was taken from us (the refresh failed, or another process took it). */
  readonly onLost: (error: Error) => void;
}

/** Takes a lock held for the life of the process, refreshed four times per stale period. */
export function takeProcessLock(path: string, options: ProcessLockOptions): Promise<() => Promise<void>> {
  return lockfile.lock(path, {
    realpath: false,
    stale: options.staleMs,
    update: Math.floor(options.staleMs / 4),
    retries: options.retries === 0 ? 0 : { retries: options.retries, factor: 1, minTimeout: 1_000, maxTimeout: 1_000 },
    onCompromised: options.onLost,
  });
}
