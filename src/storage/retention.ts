/**
 * Which closed files retention removes (SPEC section 12), decided on a list
 * of files and nothing else: no clock, no disk. A file's age and order are
 * those of its newest row's `received_at`.
 *
 * - `RETENTION_DAYS=N`: closed files whose newest row is more than N days old.
 * - `RETENTION_MAX_BYTES=B`: closed files, oldest first, while all the stream
 *   files (current ones included) take more than B bytes.
 *
 * A current file is never removed, and neither is a file not yet safe
 * elsewhere (rows JetStream has not acknowledged): such a file is `held`,
 * and for the size rule it still counts, so nothing younger goes in its place.
 */

export interface RetainedFile {
  readonly path: string;
  readonly bytes: number;
  /** Epoch ms of its newest row. */
  readonly newestMs: number;
  /** An archive or a past day's file: nothing more is appended to it. */
  readonly closed: boolean;
  /** Its rows are not safe elsewhere yet (forwarding lags): not to be removed now. */
  readonly held: boolean;
}

export interface RetentionRules {
  readonly days: number | undefined;
  readonly maxBytes: number | undefined;
}

export type RemovalReason = 'age' | 'size';

export interface RetentionPlan {
  readonly remove: ReadonlyArray<{ readonly file: RetainedFile; readonly reason: RemovalReason }>;
  /** Files a rule would remove but that are held back: retention waits for them. */
  readonly waiting: readonly RetainedFile[];
}

const DAY_MS = 86_400_000;

export function planRetention(files: readonly RetainedFile[], rules: RetentionRules, nowMs: number): RetentionPlan {
  const remove: Array<{ file: RetainedFile; reason: RemovalReason }> = [];
  const waiting: RetainedFile[] = [];
  const gone = new Set<RetainedFile>();
  const take = (file: RetainedFile, reason: RemovalReason): void => {
    if (file.held) {
      if (!waiting.includes(file)) waiting.push(file);
      return;
    }
    remove.push({ file, reason });
    gone.add(file);
  };

  const oldestFirst = files.filter((file) => file.closed).sort((a, b) => a.newestMs - b.newestMs || a.path.localeCompare(b.path));
  if (rules.days !== undefined) {
    const before = nowMs - rules.days * DAY_MS;
    for (const file of oldestFirst) if (file.newestMs < before) take(file, 'age');
  }
  if (rules.maxBytes !== undefined) {
    let total = files.filter((file) => !gone.has(file)).reduce((sum, file) => sum + file.bytes, 0);
    for (const file of oldestFirst) {
      if (total <= rules.maxBytes) break;
      if (gone.has(file)) continue;
      take(file, 'size');
      // A held file stays on disk: it still counts, and nothing younger is removed in its place.
      if (file.held) break;
      total -= file.bytes;
    }
  }
  return { remove, waiting };
}
