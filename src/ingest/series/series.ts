/**
 * `GET /streams/<name>/series` (SPEC section 13): each numeric column of a
 * stream over [from, to), in at most `points` equal time buckets aligned to
 * multiples of `bucket_ms` since the epoch, empty buckets left out; each with
 * its min, max, mean and count. Answered from the files' per-minute summaries
 * (summaries.ts), so a bucket is at least a minute and a range is taken to the
 * minute: a minute counts when it starts in the range.
 */
import { join } from 'node:path';
import { type StreamFile, isClosedFile, listStreamFiles } from '../../storage/stream-files.js';
import { MINUTE_MS } from './minute-summary.js';
import type { FileSummary, Summaries } from './summaries.js';

export const DEFAULT_POINTS = 600;
export const MAX_POINTS = 2000;

export interface SeriesQuery {
  readonly stream: string;
  readonly from: number;
  readonly to: number;
  readonly points: number;
}

export interface FieldSeries {
  unit: string;
  readonly t: number[];
  readonly min: number[];
  readonly max: number[];
  readonly mean: number[];
  readonly count: number[];
}

export interface SeriesAnswer {
  readonly stream: string;
  readonly from: string;
  readonly to: string;
  readonly bucket_ms: number;
  readonly fields: Record<string, FieldSeries>;
}

/**
 * A whole number of minutes that splits [from, to) (from ≥ 0) into at most
 * `points` aligned buckets: span / points when the alignment allows it, else
 * span / (points - 1), which always does (the range then crosses at most
 * points - 1 bucket edges); for one point, one bucket reaching past `to`.
 */
export function bucketFor(from: number, to: number, points: number): number {
  const minutes = (ms: number): number => Math.max(MINUTE_MS, Math.ceil(ms / MINUTE_MS) * MINUTE_MS);
  const fits = (bucket: number): boolean => Math.floor((to - 1) / bucket) - Math.floor(from / bucket) + 1 <= points;
  const tight = minutes((to - from) / points);
  if (fits(tight)) return tight;
  return points > 1 ? minutes((to - from) / (points - 1)) : minutes(to);
}

/** An answer holds at most this many buckets over all its columns: a stream of 1,024 columns gets fewer points each. */
export const MAX_VALUES = 200_000;

export async function seriesOf(dataDir: string, summaries: Summaries, query: SeriesQuery, nowMs: number): Promise<SeriesAnswer> {
  const { from, to } = query;
  const files = await listStreamFiles(dataDir, query.stream);
  void summaries.pruneGone().catch(() => {});
  const inRange: FileSummary[] = [];
  const names = new Set<string>();
  for (const file of files) {
    if (!mayHold(file, from, to)) continue;
    const summary = await summaries.of(join(dataDir, file.name), isClosedFile(file, nowMs));
    if (summary === null) continue;
    inRange.push(summary);
    for (const name of Object.keys(summary.columns)) names.add(name);
  }
  const points = Math.max(1, Math.min(query.points, Math.floor(MAX_VALUES / Math.max(1, names.size))));
  const bucketMs = bucketFor(from, to, points);
  // Bucket start → [min, max, sum, count], per column.
  const buckets = new Map<string, { unit: string; byStart: Map<number, [number, number, number, number]> }>();
  for (const summary of inRange) {
    for (const [name, column] of Object.entries(summary.columns)) {
      let field = buckets.get(name);
      if (field === undefined) {
        field = { unit: column.unit, byStart: new Map() };
        buckets.set(name, field);
      }
      if (column.unit !== '') field.unit = column.unit;
      const { minutes } = column;
      for (let i = lowerBound(minutes, from); i < minutes.length && (minutes[i] as number) < to; i++) {
        const start = Math.floor((minutes[i] as number) / bucketMs) * bucketMs;
        const at = field.byStart.get(start);
        const min = column.min[i] as number;
        const max = column.max[i] as number;
        if (at === undefined) {
          field.byStart.set(start, [min, max, column.sum[i] as number, column.count[i] as number]);
        } else {
          if (min < at[0]) at[0] = min;
          if (max > at[1]) at[1] = max;
          at[2] += column.sum[i] as number;
          at[3] += column.count[i] as number;
        }
      }
    }
  }
  // Keyed by column names (senders' keys): no prototype, so `__proto__` is a field like any other.
  const fields = Object.create(null) as Record<string, FieldSeries>;
  for (const [name, { unit, byStart }] of buckets) {
    if (byStart.size === 0) continue;
    const series: FieldSeries = { unit, t: [], min: [], max: [], mean: [], count: [] };
    for (const start of [...byStart.keys()].sort((a, b) => a - b)) {
      const [min, max, sum, count] = byStart.get(start) as [number, number, number, number];
      series.t.push(start);
      series.min.push(min);
      series.max.push(max);
      series.mean.push(sum / count);
      series.count.push(count);
    }
    fields[name] = series;
  }
  return { stream: query.stream, from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket_ms: bucketMs, fields };
}

/** A day file holds only rows received that UTC day: the others are not read for a range that misses it. */
function mayHold(file: StreamFile, from: number, to: number): boolean {
  if (file.day === null) return true;
  const dayStart = Date.parse(`${file.day}T00:00:00.000Z`);
  return dayStart < to && dayStart + 86_400_000 > from;
}

/** The first index whose minute is at or after `from`'s minute (a minute that starts before `from` is out). */
function lowerBound(minutes: readonly number[], from: number): number {
  let low = 0;
  let high = minutes.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((minutes[mid] as number) < from) low = mid + 1;
    else high = mid;
  }
  return low;
}
