/**
 * DATA_DIR's disk (SPEC section 12): how much room is left on its file
 * system, and how much the stream files take as stored.
 *
 * Every few seconds the free space is read (statfs: the blocks an
 * unprivileged writer may still use). Below DISK_MIN_FREE_BYTES a WARN
 * `disk space low`, repeated at most once a minute while it lasts, and an INFO
 * `disk space recovered` once it is over again. `/readyz` and the metrics read
 * the free space when they are asked, never a stale figure. Ingest goes on
 * while the disk is low: only a really full disk stops the writer (section 5).
 */
import { stat, statfs } from 'node:fs/promises';
import type { Logger } from 'pino';

/** How often the watch looks at the free space. */
export const DISK_CHECK_INTERVAL_MS = 5_000;
/** While the disk stays low, the WARN comes again at most this often. */
export const DISK_WARN_INTERVAL_MS = 60_000;

export interface DiskSpace {
  /** The configured floor (DISK_MIN_FREE_BYTES); 0 never warns. */
  readonly minFreeBytes: number;
  /** Bytes free on DATA_DIR's file system, read now. */
  freeBytes(): Promise<number>;
  /** Bytes the stream files take, as stored (current files, archives, day files). */
  filesBytes(): Promise<number>;
  /** One look at the free space: WARN or INFO on a change (the timer calls it; tests call it directly). */
  check(): Promise<void>;
  close(): void;
}

export interface DiskSpaceDeps {
  readonly dataDir: string;
  readonly minFreeBytes: number;
  readonly logger: Logger;
  /** The paths of the stream files, for `filesBytes`. */
  readonly listFiles: () => Promise<readonly string[]>;
  readonly now: () => number;
  /** The file-system seam: free blocks and their size (node:fs/promises' statfs). */
  readonly statfs?: (path: string) => Promise<{ bavail: number; bsize: number }>;
  /** Look every DISK_CHECK_INTERVAL_MS (off in tests that call check()). */
  readonly watch?: boolean;
}

export function createDiskSpace(deps: DiskSpaceDeps): DiskSpace {
  const log = deps.logger.child({ component: 'disk' });
  const readStatfs = deps.statfs ?? statfs;
  let low = false;
  let warnedAt = Number.NEGATIVE_INFINITY;

  const freeBytes = async (): Promise<number> => {
    const { bavail, bsize } = await readStatfs(deps.dataDir);
    return bavail * bsize;
  };

  async function check(): Promise<void> {
    let free: number;
    try {
      free = await freeBytes();
    } catch {
      return; // DATA_DIR itself unreadable: /readyz's data_dir check and the writer say so
    }
    const at = deps.now();
    if (free < deps.minFreeBytes) {
      if (!low || at - warnedAt >= DISK_WARN_INTERVAL_MS) {
        log.warn({ data_dir: deps.dataDir, free_bytes: free, min_free_bytes: deps.minFreeBytes }, 'disk space low');
        warnedAt = at;
      }
      low = true;
    } else if (low) {
      low = false;
      log.info({ data_dir: deps.dataDir, free_bytes: free, min_free_bytes: deps.minFreeBytes }, 'disk space recovered');
    }
  }

  let timer: NodeJS.Timeout | undefined;
  if (deps.watch ?? true) {
    void check();
    timer = setInterval(() => void check(), DISK_CHECK_INTERVAL_MS);
    timer.unref();
  }

  return {
    minFreeBytes: deps.minFreeBytes,
    freeBytes,
    async filesBytes() {
      let total = 0;
      for (const path of await deps.listFiles()) {
        // A file archived or removed since the listing is simply not counted.
        total += await stat(path).then((info) => info.size, () => 0);
      }
      return total;
    },
    check,
    close() {
      clearInterval(timer);
    },
  };
}
