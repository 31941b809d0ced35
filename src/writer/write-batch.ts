/**
 * The writer thread's work: append one group commit to its files.
 *
 *   for each file in the batch:
 *     lock <file>.lock ─► open (append) ─► a peer's cut row at the end? move it aside
 *       ─► read header ─► new key? archive + widen
 *       ─► note the rows' offset in the journal ─► one write of whole rows
 *          (header first if new) ─► one fsync ─► new file? fsync the directory
 *       ─► unlock
 *
 * A failure in one file is reported for that file alone, so the main thread
 * retries just those rows. A write that fails part-way is cut back to the
 * length before it, so no half row is left for the next batch to append to.
 * Imports only CSV and file code: this module runs inside the worker thread.
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { RECEIVED_AT, encodeLine, encodeRows, headerColumns, parseRecord } from '../csv.js';
import type { BatchResult, BatchTask, FileBatch, FileOutcome } from './batch.js';
import { archiveFileName } from './file-names.js';
import { type RepairResult, type RowBoundary, endOfLastRow, repairCutRow } from './repair.js';
import { type Journal, type ResumePoint, beginTask, noteWrite } from './write-journal.js';
import type { WriterFs } from './writer-fs.js';

/** Takes a file's lock and resolves to its release. */
export type LockFile = (path: string) => Promise<() => Promise<void>>;

export interface WriteDeps {
  readonly fs: WriterFs;
  readonly lock: LockFile;
  readonly now: () => number;
  /** Shared with the main thread, so a batch whose thread died can be resumed. */
  readonly journal?: Journal;
}

/** SPEC section 9: proper-lockfile's `<file>.lock` directory, `realpath: false`, stale after 10 s. */
export const LOCK_OPTIONS = Object.freeze({ realpath: false, stale: 10_000, retries: 0 });

/**
 * The writer's lock: a peer process holds a file's lock for one batch (a few
 * milliseconds), so wait up to about a second before counting a failed
 * attempt; a lock held longer (a stuck or foreign holder) fails with ELOCKED.
 */
export const lockWithProperLockfile: LockFile = (path) =>
  lockfile.lock(path, {
    ...LOCK_OPTIONS,
    retries: { retries: 20, factor: 1.3, minTimeout: 2, maxTimeout: 50, randomize: true },
    // A lock we hold for milliseconds cannot go stale; if its refresh ever
    // fails, the default handler would throw inside the worker thread.
    onCompromised: () => {},
  });

/** For start-up repair: wait for a live holder, take over a dead one's lock once it is stale. */
export const lockWaitingForHolder: LockFile = (path) =>
  lockfile.lock(path, {
    ...LOCK_OPTIONS,
    retries: { retries: 60, factor: 1, minTimeout: 250, maxTimeout: 250 },
    onCompromised: () => {},
  });

export const defaultWriteDeps: WriteDeps = Object.freeze({ fs: nodeFs, lock: lockWithProperLockfile, now: Date.now });

/**
 * Where each file was last known to end on a row boundary (after this
 * thread's own write, or start-up repair), by path. Another process's appends
 * since then are checked from there, not from the start of the file.
 */
const rowBoundaries = new Map<string, { ino: number; end: number }>();

/** Seeds what start-up repair verified, so the first write need not rescan a large file. */
export function rememberRowBoundaries(boundaries: readonly RowBoundary[]): void {
  for (const { path, ino, end } of boundaries) rowBoundaries.set(path, { ino, end });
}

/** Header lines seen before, by file path, so a steady file's header is not parsed per batch. */
const headerCache = new Map<string, { line: string; cells: string[] }>();

/** Writes every file of the batch in turn; one file's failure does not stop the others. */
export async function writeBatch(task: BatchTask, deps: WriteDeps = defaultWriteDeps): Promise<BatchResult> {
  if (deps.journal !== undefined) beginTask(deps.journal, task.seq);
  const files: FileOutcome[] = [];
  for (const [index, batch] of task.files.entries()) files.push(await writeFileBatch(task.dataDir, batch, deps, index));
  return { files };
}

export async function writeFileBatch(dataDir: string, batch: FileBatch, deps: WriteDeps, index = 0): Promise<FileOutcome> {
  const path = join(dataDir, batch.fileName);
  let release: (() => Promise<void>) | undefined;
  try {
    release = await deps.lock(path);
    return appendUnderLock(dataDir, batch, index, path, deps);
  } catch (error) {
    return { fileName: batch.fileName, ok: false, code: errorCode(error), message: errorMessage(error) };
  } finally {
    // A release that fails leaves a lock that goes stale in 10 s; the rows are already safe.
    await release?.().catch(() => {});
  }
}

/** A file open for appending, with what fstat said when it was opened. */
interface OpenFile {
  fd: number;
  readonly ino: number;
  readonly size: number;
}

function openForAppend(fs: WriterFs, path: string): OpenFile {
  const fd = fs.openSync(path, 'a+');
  try {
    const { ino, size } = fs.fstatSync(fd);
    return { fd, ino, size };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

function appendUnderLock(dataDir: string, batch: FileBatch, index: number, path: string, deps: WriteDeps): FileOutcome {
  const { fs } = deps;
  let file = openForAppend(fs, path);
  const reopen = (): void => {
    fs.closeSync(file.fd);
    file.fd = -1;
  };
  try {
    let repaired: RepairResult | undefined;
    if (tailIsCut(fs, path, file)) {
      // Another process died mid-write since we last looked: cut its stump
      // off before appending, or the next row would be glued onto it.
      reopen();
      repaired = repairCutRow(fs, dataDir, batch.fileName, deps.now(), checkedTo(path, file)) ?? undefined;
      file = openForAppend(fs, path);
    }

    const wanted = headerColumns(batch.rows);
    let header: string[];
    let created = file.size === 0;
    let archivedAs: string | undefined;
    let addedColumns: string[] | undefined;
    if (created) {
      header = [RECEIVED_AT, ...wanted];
    } else {
      const onDisk = readHeader(fs, file.fd, path, file.size);
      const known = new Set(onDisk);
      const added = wanted.filter((column) => !known.has(column));
      if (onDisk !== null && added.length === 0) {
        header = onDisk;
      } else {
        // SPEC section 4: never write under a wrong column; archive and widen,
        // and the whole batch goes to the new file.
        reopen();
        archivedAs = archiveCurrentFile(fs, dataDir, batch.fileName, deps.now());
        file = openForAppend(fs, path);
        header = [...(onDisk ?? [RECEIVED_AT]), ...added];
        addedColumns = added;
        created = true;
      }
    }

    const headerText = created ? encodeLine(header) : '';
    const resumedRows = created ? 0 : rowsAlreadyWritten(fs, file, header, batch);
    const rows = resumedRows === 0 ? batch.rows : batch.rows.slice(resumedRows);
    const bytes = Buffer.from(headerText + encodeRows(header, rows), 'utf8');
    if (deps.journal !== undefined) {
      const rowsStart = resumedRows > 0 ? (batch.resume as ResumePoint).rowsStart : file.size + Buffer.byteLength(headerText);
      noteWrite(deps.journal, index, { ino: file.ino, rowsStart });
    }
    writeAll(fs, file.fd, bytes, file.size);
    const started = process.hrtime.bigint();
    fs.fsyncSync(file.fd);
    const fsyncSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    rowBoundaries.set(path, { ino: file.ino, end: file.size + bytes.length });
    if (created) fsyncDirectory(fs, dataDir);
    return {
      fileName: batch.fileName,
      ok: true,
      rows: batch.rows.length,
      bytes: bytes.length,
      created,
      fsyncSeconds,
      ...(archivedAs === undefined ? {} : { archivedAs, addedColumns }),
      ...(repaired === undefined ? {} : { repaired }),
      ...(resumedRows === 0 ? {} : { resumedRows }),
    };
  } finally {
    if (file.fd >= 0) fs.closeSync(file.fd);
  }
}

/** Up to where the file is known to end on a row boundary (0: nothing known). */
function checkedTo(path: string, file: OpenFile): number {
  const known = rowBoundaries.get(path);
  return known !== undefined && known.ino === file.ino && known.end <= file.size ? known.end : 0;
}

/** Whether what was appended since we last knew the file ends part-way through a row. */
function tailIsCut(fs: WriterFs, path: string, file: OpenFile): boolean {
  const from = checkedTo(path, file);
  return from < file.size && endOfLastRow(fs, file.fd, file.size, from) !== file.size;
}

/**
 * After a writer thread died mid-batch: how many of the batch's leading rows
 * are already in the file where that thread began writing them. They are
 * compared byte for byte, so a row is skipped only if it is there exactly.
 */
function rowsAlreadyWritten(fs: WriterFs, file: OpenFile, header: readonly string[], batch: FileBatch): number {
  const point = batch.resume;
  if (point === undefined || point.ino !== file.ino || point.rowsStart > file.size) return 0;
  let offset = point.rowsStart;
  let count = 0;
  for (const row of batch.rows) {
    const expected = Buffer.from(encodeRows(header, [row]), 'utf8');
    if (offset + expected.length > file.size) break;
    const actual = Buffer.alloc(expected.length);
    fs.readSync(file.fd, actual, 0, expected.length, offset);
    if (!actual.equals(expected)) break;
    offset += expected.length;
    count++;
  }
  return count;
}

/**
 * Writes every byte, looping over short writes. On any failure the file is
 * cut back to `sizeBefore`, so a retry never appends after half a row.
 */
function writeAll(fs: WriterFs, fd: number, bytes: Buffer, sizeBefore: number): void {
  let offset = 0;
  try {
    while (offset < bytes.length) {
      const written = fs.writeSync(fd, bytes, offset, bytes.length - offset);
      if (written <= 0) throw Object.assign(new Error('write made no progress'), { code: 'ESHORTWRITE' });
      offset += written;
    }
  } catch (error) {
    try {
      fs.ftruncateSync(fd, sizeBefore);
    } catch {
      // Start-up repair cuts a torn tail if this fails too.
    }
    throw error;
  }
}

/** Reads and parses the file's first line; null when it has no complete header line. */
function readHeader(fs: WriterFs, fd: number, path: string, size: number): string[] | null {
  const cached = headerCache.get(path);
  let length = Math.min(size, Math.max(4096, (cached?.line.length ?? 0) * 4));
  for (;;) {
    const buffer = Buffer.alloc(length);
    const read = fs.readSync(fd, buffer, 0, length, 0);
    const text = buffer.toString('utf8', 0, read);
    if (cached !== undefined && text.startsWith(cached.line)) return cached.cells;
    const record = parseRecord(text);
    if (record !== null) {
      headerCache.set(path, { line: text.slice(0, record.end), cells: record.fields });
      return record.fields;
    }
    if (length >= size) return null;
    length = Math.min(size, length * 4);
  }
}

/** Renames the current file to its archive name (`data.20261123T101500Z.csv`, `-1` … if taken). */
function archiveCurrentFile(fs: WriterFs, dataDir: string, fileName: string, now: number): string {
  for (let attempt = 0; ; attempt++) {
    const name = archiveFileName(fileName, now, attempt);
    if (!fs.existsSync(join(dataDir, name))) {
      fs.renameSync(join(dataDir, fileName), join(dataDir, name));
      return name;
    }
  }
}

/** A new directory entry is durable only once the directory itself is fsynced. */
function fsyncDirectory(fs: WriterFs, dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
