/**
 * The bounded queue of rows waiting to be written. Rows of the batch being
 * written still count against the bound: they leave only once they are on
 * disk, and rows that failed stay in their place, ahead of newer ones.
 */
import type { Row } from './task.js';

/** One accepted request's rows, all bound for one file. */
export interface QueueEntry {
  readonly fileName: string;
  readonly stream: string;
  readonly rows: readonly Row[];
  /** About the bytes the rows take encoded (SPEC section 11's byte bound). */
  readonly bytes: number;
  /** Called once the fsync covering these rows is done. */
  readonly settle: () => void;
}

export class RowQueue {
  private entries: QueueEntry[] = [];
  private readonly inFlight = new Set<QueueEntry>();
  private rowCount = 0;
  private byteCount = 0;

  /** `capacity` in rows and `capacityBytes` in encoded bytes: an entry must fit both. */
  constructor(
    readonly capacity: number,
    readonly capacityBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Rows held, including those being written. */
  get length(): number {
    return this.rowCount;
  }

  /** Encoded bytes held, including those being written. */
  get bytes(): number {
    return this.byteCount;
  }

  canTake(rows: number, bytes = 0): boolean {
    return this.rowCount + rows <= this.capacity && this.byteCount + bytes <= this.capacityBytes;
  }

  push(entry: QueueEntry): void {
    this.entries.push(entry);
    this.rowCount += entry.rows.length;
    this.byteCount += entry.bytes;
  }

  /** Whether rows not being written wait for a file that `isDue` accepts. */
  hasWaiting(isDue: (fileName: string) => boolean): boolean {
    return this.entries.some((entry) => !this.inFlight.has(entry) && isDue(entry.fileName));
  }

  /** The files that have rows waiting (not being written). */
  waitingFiles(): Set<string> {
    return new Set(this.entries.filter((entry) => !this.inFlight.has(entry)).map((entry) => entry.fileName));
  }

  /**
   * Hands out waiting entries, oldest first, for files that are due, up to
   * about `maxRows` rows and `maxBytes` bytes in at most `maxFiles` files (at least one entry).
   * Once one entry of a file is passed over, so are that file's later ones:
   * each file's rows go out in order.
   */
  take(maxRows: number, maxFiles: number, isDue: (fileName: string) => boolean, maxBytes = Number.POSITIVE_INFINITY): QueueEntry[] {
    const taken: QueueEntry[] = [];
    const files = new Set<string>();
    const passed = new Set<string>();
    let rows = 0;
    let bytes = 0;
    for (const entry of this.entries) {
      if (this.inFlight.has(entry) || passed.has(entry.fileName)) continue;
      const fits =
        rows + entry.rows.length <= maxRows && bytes + entry.bytes <= maxBytes && (files.has(entry.fileName) || files.size < maxFiles);
      if (!isDue(entry.fileName) || (!fits && taken.length > 0)) {
        passed.add(entry.fileName);
        continue;
      }
      taken.push(entry);
      this.inFlight.add(entry);
      files.add(entry.fileName);
      rows += entry.rows.length;
      bytes += entry.bytes;
    }
    return taken;
  }

  /** Ends the batch in flight: written entries leave; the others stay where they were, ahead of newer ones. */
  complete(written: (entry: QueueEntry) => boolean): void {
    this.entries = this.entries.filter((entry) => {
      if (!this.inFlight.has(entry) || !written(entry)) return true;
      this.rowCount -= entry.rows.length;
      this.byteCount -= entry.bytes;
      return false;
    });
    this.inFlight.clear();
  }
}
