/**
 * Per-minute summaries of a CSV file's numeric columns (SPEC section 13):
 * for each column and each UTC minute that has a value, its min, max, sum and
 * count, and the column's unit. A file is summarised once (or, the current
 * one, from where its summary ended), and any range is answered from these.
 * Pure: no I/O, no clock.
 */
import { RECEIVED_AT } from '../../storage/csv.js';
import { parseNumericCell } from '../dashboard/numeric.js';

export const MINUTE_MS = 60_000;

/** One column's minutes, ascending, in parallel arrays (compact as JSON and in memory). */
export interface ColumnMinutes {
  unit: string;
  readonly minutes: number[];
  readonly min: number[];
  readonly max: number[];
  readonly sum: number[];
  readonly count: number[];
}

export type SummaryColumns = Record<string, ColumnMinutes>;

/** Folds records (header first) into per-minute summaries; can go on from an earlier summary. */
export class MinuteSummariser {
  private readonly columns: SummaryColumns;
  /** Where each column's minute sits in its arrays: rows are nearly always in time order, so this is a fast path. */
  private readonly indexes = new Map<string, Map<number, number>>();
  private header: string[] | undefined;
  private timeAt = -1;
  private lastMinuteText = '';
  private lastMinute = Number.NaN;

  constructor(earlier: SummaryColumns = {}) {
    this.columns = earlier;
    for (const [name, column] of Object.entries(earlier)) this.indexes.set(name, new Map(column.minutes.map((minute, i) => [minute, i])));
  }

  /** The file's header: which cell is `received_at`, and the columns' names. */
  setHeader(header: string[]): void {
    this.header = header;
    this.timeAt = header.indexOf(RECEIVED_AT);
  }

  add(fields: readonly string[]): void {
    const header = this.header;
    if (header === undefined || this.timeAt < 0 || fields.length !== header.length) return;
    const minute = this.minuteOf(fields[this.timeAt] as string);
    if (Number.isNaN(minute)) return;
    for (let i = 0; i < fields.length; i++) {
      if (i === this.timeAt) continue;
      const cell = fields[i] as string;
      if (cell === '') continue;
      const numeric = parseNumericCell(cell);
      if (numeric === null) continue;
      this.record(header[i] as string, minute, numeric.value, numeric.unit);
    }
  }

  result(): SummaryColumns {
    return this.columns;
  }

  /** `2026-11-23T10:15:00.123Z` → the epoch ms of its minute; the text's first 16 characters name it. */
  private minuteOf(receivedAt: string): number {
    const text = receivedAt.slice(0, 16);
    if (text !== this.lastMinuteText) {
      this.lastMinuteText = text;
      const ms = Date.parse(receivedAt);
      this.lastMinute = Number.isNaN(ms) ? Number.NaN : ms - (((ms % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
    }
    return this.lastMinute;
  }

  private record(name: string, minute: number, value: number, unit: string): void {
    let column = this.columns[name];
    let index = this.indexes.get(name);
    if (column === undefined || index === undefined) {
      column = { unit: '', minutes: [], min: [], max: [], sum: [], count: [] };
      index = new Map();
      this.columns[name] = column;
      this.indexes.set(name, index);
    }
    if (unit !== '') column.unit = unit;
    const last = column.minutes.length - 1;
    let at = last >= 0 && column.minutes[last] === minute ? last : index.get(minute);
    if (at === undefined) {
      at = column.minutes.length;
      // A row older than the last (a clock set back): its minute goes in order, and the index is rebuilt.
      const outOfOrder = last >= 0 && (column.minutes[last] as number) > minute;
      column.minutes.push(minute);
      column.min.push(value);
      column.max.push(value);
      column.sum.push(value);
      column.count.push(1);
      if (outOfOrder) this.sortColumn(name, column);
      else index.set(minute, at);
      return;
    }
    if (value < (column.min[at] as number)) column.min[at] = value;
    if (value > (column.max[at] as number)) column.max[at] = value;
    column.sum[at] = (column.sum[at] as number) + value;
    column.count[at] = (column.count[at] as number) + 1;
  }

  private sortColumn(name: string, column: ColumnMinutes): void {
    const order = column.minutes.map((_, i) => i).sort((a, b) => (column.minutes[a] as number) - (column.minutes[b] as number));
    for (const key of ['minutes', 'min', 'max', 'sum', 'count'] as const) {
      const sorted = order.map((i) => column[key][i] as number);
      column[key].splice(0, sorted.length, ...sorted);
    }
    this.indexes.set(name, new Map(column.minutes.map((minute, i) => [minute, i])));
  }
}
