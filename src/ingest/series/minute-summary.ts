/**
 * Per-minute summaries of a CSV file's numeric columns (SPEC section 13):
 * for each column and each UTC minute that has a value, its min, max, sum and
 * count, and the column's unit. A file is summarised once (or, the current
 * one, from where its summary ended), and any range is answered from these.
 * Pure: no I/O, no clock.
 */
import { RECEIVED_AT, parseRecord } from '../../storage/csv.js';
import { parseNumericCell, plainNumber } from '../dashboard/numeric.js';

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
  /** Each header position's column and index, found once per header rather than once per cell. */
  private slots: Array<{ column: ColumnMinutes; index: Map<number, number> } | undefined> = [];
  private timeAt = -1;
  private lastMinuteText = '';
  private readonly lastMinuteBytes = Buffer.alloc(16);
  private lastMinute = Number.NaN;

  constructor(earlier: SummaryColumns = {}) {
    // Keyed by column names, which are the senders' keys: `__proto__` must be a column like any other.
    this.columns = Object.assign(Object.create(null) as SummaryColumns, earlier);
    for (const [name, column] of Object.entries(earlier)) this.indexes.set(name, new Map(column.minutes.map((minute, i) => [minute, i])));
  }

  /** The file's header: which cell is `received_at`, and the columns' names. */
  setHeader(header: string[]): void {
    this.header = header;
    this.slots = [];
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
      const plain = plainNumber(cell);
      if (!Number.isNaN(plain)) {
        this.record(i, minute, plain, '');
        continue;
      }
      const numeric = parseNumericCell(cell);
      if (numeric !== null) this.record(i, minute, numeric.value, numeric.unit);
    }
  }

  /**
   * Whole rows as the file holds them (UTF-8 bytes, each ended by `\n`). A
   * row without a quote is cut at its commas and its plain decimals are read
   * from the bytes, no strings made (summaries read millions of rows); any
   * other row, and any other cell, goes the way of add().
   */
  addRows(bytes: Buffer, start: number, end: number): void {
    const header = this.header;
    if (header === undefined || this.timeAt !== 0) {
      this.addRowsAsText(bytes, start, end);
      return;
    }
    // Plain loops over the bytes: Buffer.indexOf crosses into C++ on every call, and a row has several.
    for (let row = start; row < end; ) {
      let at = row;
      let quote = false;
      let commas = 0;
      for (; at < end; at++) {
        const byte = bytes[at];
        if (byte === 0x2c) commas++;
        else if (byte === 0x0a) break;
        else if (byte === 0x22) {
          quote = true;
          break;
        }
      }
      if (quote) {
        // Quoted cells may hold commas and line ends: the record ends at the first `\n` outside quotes.
        let quoted = false;
        for (at = row; at < end; at++) {
          const byte = bytes[at];
          if (byte === 0x22) quoted = !quoted;
          else if (byte === 0x0a && !quoted) break;
        }
        if (at >= end) return;
        const record = parseRecord(bytes.toString('utf8', row, at + 1), 0);
        if (record !== null) this.add(record.fields);
      } else {
        if (at >= end) return;
        // A row is taken only with as many cells as the header, as add() takes it.
        if (commas === header.length - 1) this.addPlainRow(bytes, row, at);
      }
      row = at + 1;
    }
  }

  /** A row without quotes and with as many cells as the header, `\n` at `lineEnd`: its cells are between the commas. */
  private addPlainRow(bytes: Buffer, row: number, lineEnd: number): void {
    let cell = row;
    let position = 0;
    let minute = Number.NaN;
    for (let at = row; at <= lineEnd; at++) {
      if (at < lineEnd && bytes[at] !== 0x2c) continue;
      if (position === 0) {
        minute = this.minuteOfBytes(bytes, cell, at);
        if (Number.isNaN(minute)) return;
      } else if (at > cell) {
        const value = plainDecimal(bytes, cell, at);
        if (!Number.isNaN(value)) {
          this.record(position, minute, value, '');
        } else {
          const numeric = parseNumericCell(bytes.toString('utf8', cell, at));
          if (numeric !== null) this.record(position, minute, numeric.value, numeric.unit);
        }
      }
      position++;
      cell = at + 1;
    }
  }

  private addRowsAsText(bytes: Buffer, start: number, end: number): void {
    const text = bytes.toString('utf8', start, end);
    for (let offset = 0; offset < text.length; ) {
      const record = parseRecord(text, offset);
      if (record === null) return;
      offset = record.end;
      this.add(record.fields);
    }
  }

  /** The minute of a `received_at` cell: its first 16 bytes name it, so most rows need no parse. */
  private minuteOfBytes(bytes: Buffer, start: number, end: number): number {
    if (end - start >= 16) {
      let same = true;
      for (let i = 0; i < 16 && same; i++) same = bytes[start + i] === this.lastMinuteBytes[i];
      if (same) return this.lastMinute;
    }
    const minute = this.minuteOf(bytes.toString('latin1', start, end));
    this.lastMinuteBytes.fill(0);
    bytes.copy(this.lastMinuteBytes, 0, start, Math.min(end, start + 16));
    return minute;
  }

  result(): SummaryColumns {
    return this.columns;
  }

  /** `2026-11-23T10:15:00.123Z` → the epoch ms of its minute; the text's first 16 characters name it. */
  private minuteOf(receivedAt: string): number {
    const text = receivedAt.slice(0, 16);
    if (text !== this.lastMinuteText) {
      this.lastMinuteText = text;
      // The bytes' shortcut (minuteOfBytes) now names another minute: it must not answer with this one.
      this.lastMinuteBytes.fill(0);
      const ms = Date.parse(receivedAt);
      this.lastMinute = Number.isNaN(ms) ? Number.NaN : ms - (((ms % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
    }
    return this.lastMinute;
  }

  private slot(at: number): { column: ColumnMinutes; index: Map<number, number> } {
    let slot = this.slots[at];
    if (slot !== undefined) return slot;
    const name = (this.header as string[])[at] as string;
    let column = this.columns[name];
    let index = this.indexes.get(name);
    if (column === undefined || index === undefined) {
      column = { unit: '', minutes: [], min: [], max: [], sum: [], count: [] };
      index = new Map();
      this.columns[name] = column;
      this.indexes.set(name, index);
    }
    slot = { column, index };
    this.slots[at] = slot;
    return slot;
  }

  private record(position: number, minute: number, value: number, unit: string): void {
    const slot = this.slot(position);
    const { column, index } = slot;
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
      if (outOfOrder) slot.index = this.sortColumn(column);
      else index.set(minute, at);
      return;
    }
    if (value < (column.min[at] as number)) column.min[at] = value;
    if (value > (column.max[at] as number)) column.max[at] = value;
    column.sum[at] = (column.sum[at] as number) + value;
    column.count[at] = (column.count[at] as number) + 1;
  }

  /** Puts a column's minutes back in order; returns its new index. */
  private sortColumn(column: ColumnMinutes): Map<number, number> {
    const order = column.minutes.map((_, i) => i).sort((a, b) => (column.minutes[a] as number) - (column.minutes[b] as number));
    for (const key of ['minutes', 'min', 'max', 'sum', 'count'] as const) {
      const sorted = order.map((i) => column[key][i] as number);
      for (let i = 0; i < sorted.length; i++) column[key][i] = sorted[i] as number;
    }
    const index = new Map(column.minutes.map((minute, i) => [minute, i]));
    for (const [name, kept] of Object.entries(this.columns)) if (kept === column) this.indexes.set(name, index);
    return index;
  }
}

/**
 * A plain decimal (`-12.5`, `1013`) read from its bytes, or NaN for anything
 * else. Its digits make an integer below 2^53 and 10^k is exact, so one
 * division gives the double nearest the text, as Number() would.
 */
export function plainDecimal(bytes: Buffer, start: number, end: number): number {
  let at = start;
  const negative = bytes[at] === 0x2d;
  if (negative) at++;
  let mantissa = 0;
  let digits = 0;
  let fraction = -1;
  for (; at < end; at++) {
    const byte = bytes[at] as number;
    if (byte >= 0x30 && byte <= 0x39) {
      mantissa = mantissa * 10 + (byte - 0x30);
      digits++;
      if (fraction >= 0) fraction++;
    } else if (byte === 0x2e && fraction < 0) {
      fraction = 0;
    } else {
      return Number.NaN;
    }
  }
  if (digits === 0 || digits > 15 || fraction === 0) return Number.NaN;
  const value = fraction > 0 ? mantissa / 10 ** fraction : mantissa;
  return negative ? -value : value;
}
