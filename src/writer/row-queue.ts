/**
 * The bounded queue of rows waiting to be written. Rows of the batch being
 * written still count against the bound: they leave only once they are on
 * disk, and rows that failed go back to the front, ahead of newer ones.
 */
import type { Row } from './batch.js';

/** One accepted request's rows, all bound for one file. */
export interface QueueEntry {
  readonly fileName: string;
  readonly stream: string;
  readonly rows: readonly Row[];
  /** Called once the fsync covering these rows is done. */
  readonly settle: () => void;
}

export class RowQueue {
  private entries: QueueEntry[] = [];
  private inFlight = 0;
  private rowCount = 0;

  constructor(readonly capacity: number) {}

  /** Rows held, including those being written. */
  get length(): number {
    return this.rowCount;
  }

  /** Whether there are rows not yet handed to the writer. */
  get hasWaiting(): boolean {
    return this.entries.length > this.inFlight;
  }

  canTake(rows: number): boolean {
    return this.rowCount + rows <= this.capacity;
  }

  push(entry: QueueEntry): void {
    this.entries.push(entry);
    this.rowCount += entry.rows.length;
  }

  /**
   * Hands out the waiting entries, oldest first, up to about `maxRows` rows
   * in at most `maxFiles` files (at least one entry).
   */
  take(maxRows: number, maxFiles = Number.POSITIVE_INFINITY): QueueEntry[] {
    let end = this.inFlight;
    let rows = 0;
    const files = new Set<string>();
    while (end < this.entries.length) {
      const entry = this.entries[end] as QueueEntry;
      const fits = rows + entry.rows.length <= maxRows && (files.has(entry.fileName) || files.size < maxFiles);
      if (end > this.inFlight && !fits) break;
      rows += entry.rows.length;
      files.add(entry.fileName);
      end++;
    }
    const taken = this.entries.slice(this.inFlight, end);
    this.inFlight = end;
    return taken;
  }

  /** Ends the batch in flight: written entries leave, the rest go back to the front in order. */
  complete(written: (entry: QueueEntry) => boolean): void {
    const kept: QueueEntry[] = [];
    for (let i = 0; i < this.inFlight; i++) {
      const entry = this.entries[i] as QueueEntry;
      if (written(entry)) this.rowCount -= entry.rows.length;
      else kept.push(entry);
    }
    this.entries = kept.concat(this.entries.slice(this.inFlight));
    this.inFlight = 0;
  }
}
