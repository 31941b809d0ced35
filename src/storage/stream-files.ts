/**
 * A stream's CSV files in DATA_DIR, found by name and put in time order:
 * `<stream>.csv` and its archives `<stream>.<YYYYMMDDTHHMMSSZ>[-n].csv`, and
 * with daily rotation `<stream>-YYYY-MM-DD.csv` and its archives (SPEC
 * sections 4 and 9, src/writer/file-names.ts). File names are only ever
 * matched against these patterns, never built from a request, so no request
 * can reach a file outside them.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface StreamFile {
  readonly name: string;
  /** `YYYY-MM-DD` for a daily file or its archive; null for `<stream>.csv` and its archives. */
  readonly day: string | null;
  /** The archive's `YYYYMMDDTHHMMSSZ`, or null for a current file. */
  readonly archivedAt: string | null;
  /** The `-n` of an archive whose name was taken (0 if none). */
  readonly attempt: number;
}

const DAY = String.raw`(\d{4}-\d{2}-\d{2})`;
const ARCHIVE = String.raw`(?:\.(\d{8}T\d{6}Z)(?:-(\d{1,6}))?)?`;

/** The one pattern a stream's file names match: `<stream>[-<day>][.<archive time>[-n]].csv`. */
function patternFor(stream: string): RegExp {
  const name = stream.replace(/[^a-z0-9_]/g, (ch) => `\\${ch}`);
  return new RegExp(`^${name}(?:-${DAY})?${ARCHIVE}\\.csv$`);
}

/** What `fileName` is among `stream`'s files, or null if it is not one. */
export function matchStreamFile(stream: string, fileName: string): StreamFile | null {
  const match = patternFor(stream).exec(fileName);
  if (match === null) return null;
  const [, day, archivedAt, attempt] = match;
  if (day !== undefined && !isCalendarDay(day)) return null;
  return { name: fileName, day: day ?? null, archivedAt: archivedAt ?? null, attempt: attempt === undefined ? 0 : Number(attempt) };
}

/**
 * Oldest first: `<stream>.csv`'s archives, then `<stream>.csv`, then each
 * day's archives and then that day's file. An archive holds rows from before
 * it was renamed, so archives sort by that time, before the current file.
 */
export function compareStreamFiles(a: StreamFile, b: StreamFile): number {
  const dayA = a.day ?? '';
  const dayB = b.day ?? '';
  if (dayA !== dayB) return dayA < dayB ? -1 : 1;
  if (a.archivedAt === null || b.archivedAt === null) return (a.archivedAt === null ? 1 : 0) - (b.archivedAt === null ? 1 : 0);
  if (a.archivedAt !== b.archivedAt) return a.archivedAt < b.archivedAt ? -1 : 1;
  return a.attempt - b.attempt;
}

/** `stream`'s files in `dataDir`, oldest first. */
export async function listStreamFiles(dataDir: string, stream: string): Promise<StreamFile[]> {
  const files: StreamFile[] = [];
  for (const entry of await readdir(dataDir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = matchStreamFile(stream, entry.name);
    if (file !== null) files.push(file);
  }
  return files.sort(compareStreamFiles);
}

/** `YYYY-MM-DD` naming a real UTC day (not 2026-02-30). */
export function isCalendarDay(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const date = new Date(`${text}T00:00:00.000Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === text;
}

/**
 * Which of `streams` a CSV file belongs to, whether it is an archive, and its
 * UTC day under daily rotation; null for any other file.
 */
export function streamFileOf(fileName: string, streams: Iterable<string>): { stream: string; archive: boolean; day?: string } | null {
  let dayFile: { stream: string; archive: boolean; day?: string } | null = null;
  for (const stream of streams) {
    const file = matchStreamFile(stream, fileName);
    if (file === null) continue;
    // A stream named like another's day file (`data-2026-11-23`) owns its own name.
    if (file.day === null) return { stream, archive: file.archivedAt !== null };
    dayFile ??= { stream, archive: file.archivedAt !== null, day: file.day };
  }
  return dayFile;
}

/** A stream file by its path, and whether it is closed (what disk space and retention need to know of it). */
export interface ListedFile {
  readonly path: string;
  /** An archive or a past day's file: nothing more is appended to it. */
  readonly closed: boolean;
}

/** Every file of `streams` in `dataDir`, and whether it is closed at `nowMs`. */
export async function listStoredFiles(dataDir: string, streams: readonly string[], nowMs: number): Promise<ListedFile[]> {
  const listed: ListedFile[] = [];
  for (const stream of streams) {
    for (const file of await listStreamFiles(dataDir, stream)) listed.push({ path: join(dataDir, file.name), closed: isClosedFile(file, nowMs) });
  }
  return listed;
}

/**
 * SPEC section 12: a closed file is one nothing more is appended to, an
 * archive or a past UTC day's file (`CSV_ROTATE=daily`).
 */
export function isClosedFile(file: StreamFile, nowMs: number): boolean {
  return file.archivedAt !== null || (file.day !== null && file.day < new Date(nowMs).toISOString().slice(0, 10));
}
