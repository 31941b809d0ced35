/**
 * A stream's CSV files in DATA_DIR, found by name and put in time order:
 * `<stream>.csv` and its archives `<stream>.<YYYYMMDDTHHMMSSZ>[-n].csv`, and
 * with daily rotation `<stream>-YYYY-MM-DD.csv` and its archives (SPEC
 * sections 4 and 9, src/writer/file-names.ts); each of them also as
 * `<file>.gz` once compressed (section 12). File names are only ever
 * matched against these patterns, never built from a request, so no request
 * can reach a file outside them.
 */
import * as nodeFs from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { COMPRESSED_SUFFIX } from './compressed.js';
import { readFileState } from './file-state.js';

export interface StreamFile {
  readonly name: string;
  /** `YYYY-MM-DD` for a daily file or its archive; null for `<stream>.csv` and its archives. */
  readonly day: string | null;
  /** The archive's `YYYYMMDDTHHMMSSZ`, or null for a current file. */
  readonly archivedAt: string | null;
  /** The `-n` of an archive whose name was taken (0 if none). */
  readonly attempt: number;
  /** Stored as `<file>.gz` (SPEC section 12). */
  readonly compressed: boolean;
}

const DAY = String.raw`(\d{4}-\d{2}-\d{2})`;
const ARCHIVE = String.raw`(?:\.(\d{8}T\d{6}Z)(?:-(\d{1,6}))?)?`;

/** The one pattern a stream's file names match: `<stream>[-<day>][.<archive time>[-n]].csv[.gz]`. */
function patternFor(stream: string): RegExp {
  const name = stream.replace(/[^a-z0-9_]/g, (ch) => `\\${ch}`);
  return new RegExp(`^${name}(?:-${DAY})?${ARCHIVE}\\.csv(\\.gz)?$`);
}

/** What `fileName` is among `stream`'s files, or null if it is not one. */
export function matchStreamFile(stream: string, fileName: string): StreamFile | null {
  const match = patternFor(stream).exec(fileName);
  if (match === null) return null;
  const [, day, archivedAt, attempt, gz] = match;
  if (day !== undefined && !isCalendarDay(day)) return null;
  return { name: fileName, day: day ?? null, archivedAt: archivedAt ?? null, attempt: attempt === undefined ? 0 : Number(attempt), compressed: gz !== undefined };
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
  if (a.archivedAt !== b.archivedAt) {
    if (a.archivedAt === null) return 1;
    if (b.archivedAt === null) return -1;
    return a.archivedAt < b.archivedAt ? -1 : 1;
  }
  if (a.attempt !== b.attempt) return a.attempt - b.attempt;
  // One name in both forms: the .gz holds the older rows (a late row began the plain file again).
  return Number(b.compressed) - Number(a.compressed);
}

/**
 * `stream`'s files in `dataDir`, oldest first, as readers take them: of a
 * file in both forms with one id (a compression cut short between the `.gz`'s
 * rename and the plain file's removal), the one that holds more (the `.gz`,
 * unless rows came to the plain file since) is listed alone. `twins: true`
 * lists both, for the passes that finish such a compression.
 */
export async function listStreamFiles(dataDir: string, stream: string, { twins = false } = {}): Promise<StreamFile[]> {
  const files: StreamFile[] = [];
  for (const entry of await readdir(dataDir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = matchStreamFile(stream, entry.name);
    if (file !== null) files.push(file);
  }
  if (!twins) {
    const names = new Set(files.map((file) => file.name));
    const hidden = new Set<string>();
    for (const file of files) {
      if (file.compressed || !names.has(file.name + COMPRESSED_SUFFIX)) continue;
      const kept = twinToRead(dataDir, file.name);
      if (kept !== null) hidden.add(kept === 'plain' ? file.name + COMPRESSED_SUFFIX : file.name);
    }
    return files.filter((file) => !hidden.has(file.name)).sort(compareStreamFiles);
  }
  return files.sort(compareStreamFiles);
}

/**
 * Of `<name>` and `<name>.gz` carrying one id, the one to read: the plain file
 * if it grew past what the `.gz` holds (it holds all of it, and more), else
 * the `.gz`. Null when they are two files (other ids, or states unreadable).
 */
function twinToRead(dataDir: string, name: string): 'plain' | 'compressed' | null {
  try {
    const plain = readFileState(nodeFs, join(dataDir, name));
    const compressed = readFileState(nodeFs, join(dataDir, name + COMPRESSED_SUFFIX));
    if (plain === null || compressed?.id !== plain.id) return null;
    return plain.synced > compressed.synced ? 'plain' : 'compressed';
  } catch {
    return null;
  }
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
export function streamFileOf(fileName: string, streams: Iterable<string>): { stream: string; archive: boolean; compressed: boolean; day?: string } | null {
  let dayFile: { stream: string; archive: boolean; compressed: boolean; day?: string } | null = null;
  for (const stream of streams) {
    const file = matchStreamFile(stream, fileName);
    if (file === null) continue;
    // A stream named like another's day file (`data-2026-11-23`) owns its own name.
    if (file.day === null) return { stream, archive: file.archivedAt !== null, compressed: file.compressed };
    dayFile ??= { stream, archive: file.archivedAt !== null, compressed: file.compressed, day: file.day };
  }
  return dayFile;
}

/** A stream file by its path, and what disk space, retention and compression need to know of it. */
export interface ListedFile {
  readonly path: string;
  /** An archive or a past day's file: nothing more is appended to it. */
  readonly closed: boolean;
  /** Closed, plain, and past the time a late row could still reach it: COMPRESS_CLOSED may compress it (absent: no). */
  readonly compressible?: boolean;
}

/** Every file of `streams` in `dataDir` as stored (both forms of one), and whether it is closed at `nowMs`. */
export async function listStoredFiles(dataDir: string, streams: readonly string[], nowMs: number): Promise<ListedFile[]> {
  const listed: ListedFile[] = [];
  for (const stream of streams) {
    // Both forms of a file (a compression cut short): the compression pass finishes it, disk space counts both.
    for (const file of await listStreamFiles(dataDir, stream, { twins: true })) listed.push(listedFile(join(dataDir, file.name), file, nowMs));
  }
  return listed;
}

export function listedFile(path: string, file: StreamFile, nowMs: number): ListedFile {
  return { path, closed: isClosedFile(file, nowMs), compressible: isCompressible(file, nowMs) };
}

/**
 * SPEC section 12: a closed file is one nothing more is appended to, an
 * archive or a past UTC day's file (`CSV_ROTATE=daily`).
 */
export function isClosedFile(file: StreamFile, nowMs: number): boolean {
  return file.compressed || file.archivedAt !== null || (file.day !== null && file.day < utcDay(nowMs));
}

/**
 * Whether a closed plain file is compressed now: an archive at once; a past
 * day's file once the day after it has ended too, since a row received just
 * before midnight may still be in the queue for it (the forwarder settles a
 * day file by the same rule). A row that comes later still (a writer stalled
 * for a day) starts the plain file again beside its `.gz`, and that stays plain.
 */
export function isCompressible(file: StreamFile, nowMs: number): boolean {
  if (file.compressed) return false;
  return file.archivedAt !== null || (file.day !== null && file.day < utcDay(nowMs - 86_400_000));
}

function utcDay(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}
