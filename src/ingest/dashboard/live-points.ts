/**
 * What the dashboard shows of each stream, kept in memory and bounded: the
 * last hour of every numeric field (at most one point a second per field, at
 * most MAX_FIELDS fields), the last reading (cut to MAX_LAST_CELLS cells of
 * MAX_CELL_CHARS characters), and the rows received in the last minute.
 *
 * Fed from two places: the ingest pipeline as rows are accepted, and at
 * start-up the tails of the CSV files (src/dashboard/restore-points.ts).
 */
import type { StreamActivity } from '../../server/stream-activity.js';
import type { Reading } from '../../storage/reading.js';
import { parseNumericCell } from './numeric.js';

/** The chart covers this much time. */
export const WINDOW_MS = 60 * 60 * 1000;
/** Charted fields per stream; later numeric fields are not charted. */
export const MAX_FIELDS = 16;
/** One point a second over the window. */
export const MAX_POINTS = WINDOW_MS / 1000;
export const MAX_LAST_CELLS = 64;
export const MAX_CELL_CHARS = 200;
const RATE_WINDOW_SEC = 60;

/** A reading as shown on a card: when, and its first cells as `[column, cell]` pairs (pairs keep column order in JSON). */
export interface LastReading {
  readonly received_at: string;
  readonly cells: ReadonlyArray<readonly [string, string]>;
}

/** One field's points over the window, oldest first: `t` epoch ms, `v` values. */
export interface FieldSeries {
  readonly name: string;
  readonly unit: string;
  readonly t: number[];
  readonly v: number[];
}

export interface StreamState {
  readonly stream: string;
  readonly last_received: string | null;
  readonly rows_per_minute: number;
  readonly last_reading: LastReading | null;
  readonly fields: FieldSeries[];
}

/** What the page loads first (`/dashboard/state`, and the first event of `/events`). */
export interface DashboardState {
  /** The server's clock, epoch ms: the page measures "quiet for N s" against it. */
  readonly now: number;
  readonly window_sec: number;
  /** A stream counts as receiving until it has been quiet this long (INACTIVITY_WARN_SEC). */
  readonly quiet_after_sec: number;
  readonly streams: StreamState[];
}

/** What one accepted batch changed: the body of a `rows` event. */
export interface RowsUpdate {
  readonly stream: string;
  /** Epoch ms the rows were received. */
  readonly at: number;
  readonly rows: number;
  readonly rows_per_minute: number;
  readonly last_reading: LastReading;
  /** Each numeric field's value in the batch (its last reading that has the field). */
  readonly fields: ReadonlyArray<{ readonly name: string; readonly unit: string; readonly v: number }>;
}

export interface LivePoints {
  /**
   * Notes an accepted batch. Returns the update to push when `wantUpdate`
   * (a dashboard is open); null otherwise, or for a stream not configured.
   */
  record(stream: string, readings: readonly Reading[], receivedAt: number, wantUpdate?: boolean): RowsUpdate | null;
  /** Every configured stream's state, points older than the window left out. */
  snapshot(): DashboardState;
}

export interface LivePointsOptions {
  readonly streams: readonly string[];
  readonly quietAfterSec: number;
  readonly now: () => number;
  /** The one source of each stream's last received time (the same as /history's and /metrics'). */
  readonly activity: StreamActivity;
}

export function createLivePoints({ streams, quietAfterSec, now, activity }: LivePointsOptions): LivePoints {
  const states = new Map(streams.map((stream) => [stream, new StreamPoints()]));

  return {
    record(stream, readings, receivedAt, wantUpdate = true) {
      const state = states.get(stream);
      if (state === undefined || readings.length === 0) return null;
      const update = state.record(readings, receivedAt, wantUpdate);
      return update === null ? null : { stream, ...update };
    },
    snapshot() {
      const at = now();
      return {
        now: at,
        window_sec: WINDOW_MS / 1000,
        quiet_after_sec: quietAfterSec,
        streams: [...states].map(([stream, state]) => ({ stream, ...state.snapshot(at, activity.lastReceived(stream)) })),
      };
    },
  };
}

class StreamPoints {
  /** When the reading shown as the last one was received. */
  private lastAt: number | null = null;
  /** The newest reading as it came: turned into a LastReading only when someone looks (every request pays otherwise). */
  private last: { readonly reading: Reading; readonly receivedAt: number } | null = null;
  private readonly fields = new Map<string, { unit: string; points: PointRing }>();
  private readonly rate = new RowRate();

  record(readings: readonly Reading[], receivedAt: number, wantUpdate: boolean): Omit<RowsUpdate, 'stream'> | null {
    // A clock stepping back (NTP on a Pi) must not make "last received" go back.
    if (this.lastAt === null || receivedAt >= this.lastAt) {
      this.lastAt = receivedAt;
      this.last = { reading: readings[readings.length - 1] as Reading, receivedAt };
    }
    this.rate.add(receivedAt, readings.length);
    const changed: Array<{ name: string; unit: string; v: number }> | null = wantUpdate ? [] : null;
    // One reading's columns are distinct; only a batch needs to know which fields it has done.
    const done = readings.length > 1 ? new Set<string>() : null;
    // Newest reading first: one point a second per field, so the batch's last value of each field is the one kept.
    for (let r = readings.length - 1; r >= 0; r--) {
      const { columns, cells } = readings[r] as Reading;
      for (let i = 0; i < columns.length; i++) {
        const name = columns[i] as string;
        if (done?.has(name) === true) continue;
        const numeric = parseNumericCell(cells[i] as string);
        if (numeric === null) continue;
        let field = this.fields.get(name);
        if (field === undefined) {
          if (this.fields.size >= MAX_FIELDS) continue;
          field = { unit: numeric.unit, points: new PointRing(MAX_POINTS) };
          this.fields.set(name, field);
        }
        if (numeric.unit !== '') field.unit = numeric.unit;
        field.points.push(receivedAt, numeric.value);
        done?.add(name);
        changed?.push({ name, unit: field.unit, v: numeric.value });
      }
    }
    if (changed === null) return null;
    return {
      at: receivedAt,
      rows: readings.length,
      rows_per_minute: this.rate.count(receivedAt),
      last_reading: this.lastReading() as LastReading,
      fields: changed,
    };
  }

  private lastReading(): LastReading | null {
    return this.last === null ? null : lastReadingOf(this.last.reading, this.last.receivedAt);
  }

  snapshot(at: number, lastReceived: number | null): Omit<StreamState, 'stream'> {
    return {
      last_received: lastReceived === null ? null : new Date(lastReceived).toISOString(),
      rows_per_minute: this.rate.count(at),
      last_reading: this.lastReading(),
      fields: [...this.fields].map(([name, { unit, points }]) => ({ name, unit, ...points.since(at - WINDOW_MS) })),
    };
  }
}

/** The reading's non-empty cells (an empty one is a null, or a key a restored row's file had and it did not). */
function lastReadingOf(reading: Reading, receivedAt: number): LastReading {
  const cells: Array<[string, string]> = [];
  for (let i = 0; i < reading.columns.length && cells.length < MAX_LAST_CELLS; i++) {
    const cell = reading.cells[i] as string;
    if (cell !== '') cells.push([(reading.columns[i] as string).slice(0, MAX_CELL_CHARS), cell.slice(0, MAX_CELL_CHARS)]);
  }
  return { received_at: new Date(receivedAt).toISOString(), cells };
}

/**
 * A field's points, oldest first, in typed arrays that grow to `capacity`
 * and then overwrite the oldest. At most one point a second: a value in the
 * same second as the newest point (or earlier, after a clock step) replaces it.
 */
export class PointRing {
  private times = new Float64Array(64);
  private values = new Float64Array(64);
  private start = 0;
  private size = 0;

  constructor(private readonly capacity: number) {}

  get length(): number {
    return this.size;
  }

  push(t: number, v: number): void {
    if (this.size > 0) {
      const newest = (this.start + this.size - 1) % this.times.length;
      if (Math.floor(t / 1000) <= Math.floor((this.times[newest] as number) / 1000)) {
        this.times[newest] = Math.max(t, this.times[newest] as number);
        this.values[newest] = v;
        return;
      }
    }
    if (this.size === this.times.length) {
      if (this.size < this.capacity) this.grow();
      else {
        this.start = (this.start + 1) % this.times.length;
        this.size--;
      }
    }
    const at = (this.start + this.size) % this.times.length;
    this.times[at] = t;
    this.values[at] = v;
    this.size++;
    // Points that fell out of the window are dropped as new ones come.
    while (this.size > 1 && (this.times[this.start] as number) < t - WINDOW_MS) {
      this.start = (this.start + 1) % this.times.length;
      this.size--;
    }
  }

  /** The points at or after `from` (epoch ms), oldest first. */
  since(from: number): { t: number[]; v: number[] } {
    const t: number[] = [];
    const v: number[] = [];
    for (let k = 0; k < this.size; k++) {
      const i = (this.start + k) % this.times.length;
      if ((this.times[i] as number) < from) continue;
      t.push(this.times[i] as number);
      v.push(this.values[i] as number);
    }
    return { t, v };
  }

  private grow(): void {
    const length = Math.min(this.capacity, this.times.length * 2);
    const times = new Float64Array(length);
    const values = new Float64Array(length);
    for (let k = 0; k < this.size; k++) {
      const i = (this.start + k) % this.times.length;
      times[k] = this.times[i] as number;
      values[k] = this.values[i] as number;
    }
    this.times = times;
    this.values = values;
    this.start = 0;
  }
}

/** Rows in the last minute, counted in 60 one-second slots. */
class RowRate {
  private readonly counts = new Float64Array(RATE_WINDOW_SEC);
  private readonly seconds = new Float64Array(RATE_WINDOW_SEC).fill(-1);

  add(atMs: number, rows: number): void {
    const second = Math.floor(atMs / 1000);
    const i = second % RATE_WINDOW_SEC;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.counts[i] = 0;
    }
    this.counts[i] = (this.counts[i] as number) + rows;
  }

  count(atMs: number): number {
    const second = Math.floor(atMs / 1000);
    let total = 0;
    for (let i = 0; i < RATE_WINDOW_SEC; i++) {
      const s = this.seconds[i] as number;
      if (s > second - RATE_WINDOW_SEC && s <= second) total += this.counts[i] as number;
    }
    return total;
  }
}
