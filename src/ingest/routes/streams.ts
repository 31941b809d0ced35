/**
 * Data access without ssh: `GET /streams` lists each stream's CSV files and
 * `GET /streams/<name>/csv?from=YYYY-MM-DD&to=YYYY-MM-DD` downloads its rows
 * in a range of UTC days as one CSV. READ_TOKEN guards both (the download
 * also takes `?token=`, for a plain link). Only configured stream names are
 * taken, and only files whose names match the stream's patterns are read.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { type RequestHandler, Router } from 'express';
import { requireToken, requireTokenOrQuery } from '../../server/auth.js';
import { type DayRange, exportCsv, inDayRange, unionColumns } from '../../storage/csv-export.js';
import type { StreamActivity } from '../../server/stream-activity.js';
import { countRows, readHeader } from '../../storage/csv.js';
import { plainSizeOf } from '../../storage/compressed.js';
import { BadRequestError, NotFoundError } from '../../shared/errors.js';
import { isCalendarDay, listStreamFiles } from '../../storage/stream-files.js';
import { refuseOtherMethods } from '../../server/other-methods.js';
import { DEFAULT_POINTS, MAX_POINTS, seriesOf } from '../series/series.js';
import { createSummaries } from '../series/summaries.js';

export interface StreamsRouteDeps {
  readonly dataDir: string;
  readonly streams: readonly string[];
  /** The one source of each stream's last received time. */
  readonly activity: StreamActivity;
  readonly readToken: string | undefined;
}

/** Files of up to this many CSV bytes get a row count in `/streams`; counting reads (and inflates) the whole file. */
export const ROW_COUNT_MAX_BYTES = 1024 * 1024;
/** And one listing counts rows in at most this many bytes in all. */
export const ROW_COUNT_BUDGET_BYTES = 16 * 1024 * 1024;

export function createStreamsRouter({ dataDir, streams, activity, readToken }: StreamsRouteDeps): Router {
  const router = Router();

  router.get('/streams', requireToken(readToken), async (_req, res) => {
    let budget = ROW_COUNT_BUDGET_BYTES;
    const listing = [];
    for (const stream of streams) {
      const files = [];
      for (const file of await listStreamFiles(dataDir, stream)) {
        const path = join(dataDir, file.name);
        const info = await stat(path).catch(() => null);
        if (info === null) continue; // archived since the listing
        let rows: number | null = null;
        // A .gz is counted by the CSV it holds (its trailer says how much): that is what counting reads.
        // Its trailer holds the size modulo 4 GiB: only a .gz small as stored is taken at its word.
        const csvBytes = info.size > ROW_COUNT_MAX_BYTES ? info.size : await plainSizeOf(path, info.size).catch(() => Number.POSITIVE_INFINITY);
        if (csvBytes <= ROW_COUNT_MAX_BYTES && csvBytes <= budget) {
          budget -= csvBytes;
          rows = await countRows(path).catch(() => null);
        }
        files.push({ name: file.name, bytes: info.size, rows, day: file.day, modified: info.mtime.toISOString() });
      }
      const newest = files.at(-1);
      const lastReceived = activity.lastReceived(stream);
      listing.push({
        name: stream,
        columns: newest === undefined ? [] : ((await headerIfPresent(join(dataDir, newest.name))) ?? []),
        last_received: lastReceived === null ? null : new Date(lastReceived).toISOString(),
        bytes: files.reduce((sum, file) => sum + file.bytes, 0),
        csv: `/streams/${stream}/csv`,
        files,
      });
    }
    res.set('Cache-Control', 'no-store').json({ streams: listing });
  });

  const nameRoute: RequestHandler = (_req, res, next) => {
    // The metrics label: a pattern with a parameter is only used once named.
    res.locals.route = '/streams/:name/csv';
    next();
  };
  router.get('/streams/:name/csv', nameRoute, requireTokenOrQuery(readToken), async (req, res, next) => {
    // The configured name itself, never the request's text, is what goes on.
    const stream = streams.find((name) => name === req.params.name);
    if (stream === undefined) throw new NotFoundError(`no stream named '${String(req.params.name).slice(0, 64)}'`);
    const range = dayRangeOf(req.query);
    const files = (await listStreamFiles(dataDir, stream)).filter((file) => file.day === null || inDayRange(file.day, range));
    const headers: string[][] = [];
    const paths: string[] = [];
    for (const file of files) {
      const path = join(dataDir, file.name);
      const header = await headerIfPresent(path);
      if (header === null) continue;
      headers.push(header);
      paths.push(path);
    }
    res.set({
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="${stream}_${range.from ?? 'first'}_${range.to ?? 'last'}.csv"`,
      'Cache-Control': 'no-store',
    });
    pipeline(Readable.from(exportCsv(paths, unionColumns(headers), range)), res, (error) => {
      // Once bytes are sent there is no status left to change: the cut-off download shows the fault.
      if (error && !res.headersSent) next(error);
    });
  });

  const summaries = createSummaries(dataDir);
  const seriesRoute: RequestHandler = (_req, res, next) => {
    res.locals.route = '/streams/:name/series';
    next();
  };
  router.get('/streams/:name/series', seriesRoute, requireTokenOrQuery(readToken), async (req, res) => {
    const stream = streams.find((name) => name === req.params.name);
    if (stream === undefined) throw new NotFoundError(`no stream named '${String(req.params.name).slice(0, 64)}'`);
    const now = Date.now();
    const to = instantOf(req.query, 'to') ?? now;
    const from = instantOf(req.query, 'from') ?? to - 3_600_000;
    if (from >= to) throw new BadRequestError(`from (${new Date(from).toISOString()}) must be before to (${new Date(to).toISOString()})`, 'BAD_QUERY');
    const points = pointsOf(req.query);
    res.set('Cache-Control', 'no-store').json(await seriesOf(dataDir, summaries, { stream, from, to, points }, now));
  });

  refuseOtherMethods(router, ['/streams', '/streams/:name/csv', '/streams/:name/series']);
  return router;
}

/**
 * A file's header; null if the file has gone (archived since the listing) or
 * has no whole header line yet. Any other failure is thrown: a file skipped in
 * silence would look like a stream with no rows.
 */
async function headerIfPresent(path: string): Promise<string[] | null> {
  try {
    return await readHeader(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** `from` or `to`: epoch milliseconds, or an ISO 8601 date or time (`2026-11-23`, `2026-11-23T10:00:00Z`). */
function instantOf(query: Record<string, unknown>, name: 'from' | 'to'): number | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : '';
  // A calendar day (2026-02-30 is none), and no earlier than the epoch: rows carry their time since it.
  const ms = /^\d{1,15}$/.test(text) ? Number(text) : ISO_INSTANT.test(text) && isCalendarDay(text.slice(0, 10)) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms) || ms < 0 || ms > MAX_INSTANT_MS) {
    throw new BadRequestError(`${name} must be milliseconds since the epoch or an ISO 8601 time (2026-11-23T10:00:00Z), got ${JSON.stringify(value).slice(0, 80)}`, 'BAD_QUERY');
  }
  return ms;
}

function pointsOf(query: Record<string, unknown>): number {
  const value = query.points;
  if (value === undefined) return DEFAULT_POINTS;
  const points = typeof value === 'string' && /^\d{1,4}$/.test(value) ? Number(value) : Number.NaN;
  if (!(points >= 1 && points <= MAX_POINTS)) throw new BadRequestError(`points must be a whole number from 1 to ${MAX_POINTS}, got ${JSON.stringify(value).slice(0, 80)}`, 'BAD_QUERY');
  return points;
}

/** A day, or a day and a time with an optional fraction and zone. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;
/** Year 9999: past it, a date does not print as ISO 8601. */
const MAX_INSTANT_MS = 253_402_300_799_999;

function dayRangeOf(query: Record<string, unknown>): DayRange {
  const day = (name: 'from' | 'to'): string | undefined => {
    const value = query[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !isCalendarDay(value)) {
      throw new BadRequestError(`${name} must be a day as YYYY-MM-DD, got ${JSON.stringify(value)}`, 'BAD_QUERY');
    }
    return value;
  };
  const from = day('from');
  const to = day('to');
  if (from !== undefined && to !== undefined && from > to) throw new BadRequestError(`from (${from}) is after to (${to})`, 'BAD_QUERY');
  return { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) };
}
