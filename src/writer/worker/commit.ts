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
import { basename, dirname, join } from 'node:path';
import { RECEIVED_AT, encodeLine, encodeRows, endOfLastRow, guardCell, headerColumns, readFully, readHeaderRecord } from '../../storage/csv.js';
import type { BatchResult, BatchTask, FileBatch, FileOutcome, Row } from '../task.js';
import { archiveFileName } from '../../storage/file-names.js';
import { cachedHeader, forgetRowEnd, knownRowEnd, rememberHeader, rememberRowEnd } from './file-memory.js';
import { type FileState, ensureFileState, readFileState, markArchiving, newFileId, recordSynced, writeFileStateDurably } from '../../storage/file-state.js';
import { type RepairResult, repairCutRow } from '../../storage/repair.js';
import { type Journal, type ResumePoint, beginTask, noteWrite, pointFor } from '../resume-journal.js';
import { type WriterFs, fsyncDirectory, writeAll } from '../../storage/fs.js';
import { type LockFile, lockForCommit } from '../../storage/lock.js';

export interface WriteDeps {
  readonly fs: WriterFs;
  readonly lock: LockFile;
  readonly now: () => number;
  /** Shared with the main thread, so a batch whose thread died can be resumed. */
  readonly journal?: Journal;
}

export const defaultWriteDeps: WriteDeps = Object.freeze({ fs: nodeFs, lock: lockForCommit, now: Date.now });

/** Writes every file of the batch in turn; one file's failure does not stop the others. */
export async function writeBatch(task: BatchTask, deps: WriteDeps = defaultWriteDeps): Promise<BatchResult> {
  if (deps.journal !== undefined) beginTask(deps.journal, task.seq);
  const files: FileOutcome[] = [];
  for (const [index, batch] of task.files.entries()) {
    files.push(await writeFileBatch(task.dataDir, batch, deps, index, task.maxColumns));
  }
  return { files };
}

export async function writeFileBatch(
  dataDir: string,
  batch: FileBatch,
  deps: WriteDeps,
  index = 0,
  maxColumns = Number.POSITIVE_INFINITY,
): Promise<FileOutcome> {
  const path = join(dataDir, batch.fileName);
  let release: (() => Promise<void>) | undefined;
  try {
    release = await deps.lock(path);
    return appendUnderLock(dataDir, batch, index, path, deps, maxColumns);
  } catch (error) {
    const resume = resumeOf(error);
    return { fileName: batch.fileName, ok: false, code: errorCode(error), message: errorMessage(error), ...(resume === undefined ? {} : { resume }) };
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

function closeFile(fs: WriterFs, file: OpenFile): void {
  if (file.fd < 0) return;
  fs.closeSync(file.fd);
  file.fd = -1;
}

function appendUnderLock(dataDir: string, batch: FileBatch, index: number, path: string, deps: WriteDeps, maxColumns: number): FileOutcome {
  const { fs } = deps;
  let file = openForAppend(fs, path);
  if (file.size === 0 && completeWiden(fs, path)) {
    closeFile(fs, file);
    file = openForAppend(fs, path);
  }
  try {
    let repaired: RepairResult | undefined;
    if (tailIsCut(fs, path, file)) {
      // Another process died mid-write since we last looked: cut its stump
      // off before appending, or the next row would be glued onto it.
      const from = knownRowEnd(path, file.ino, file.size);
      closeFile(fs, file);
      repaired = repairCutRow(fs, dataDir, batch.fileName, deps.now(), from) ?? undefined;
      file = openForAppend(fs, path);
    }
    // A state that cannot be read or set fails the attempt (SPEC section 11): nothing is written
    // until the file's identity is known, so it never gets a second id.
    const state = ensureFileState(fs, path, file.size, deps.now(), () => fs.fsyncSync(file.fd));
    const outcome = { fileName: batch.fileName, ok: true as const, ...(repaired === undefined ? {} : { repaired }) };

    const onDisk = file.size === 0 ? null : readHeader(fs, path, file);
    const plan = planHeader(file.size === 0 ? null : onDisk, batch, maxColumns);
    // Later requests that would pass MAX_COLUMNS here wait for the next commit, which starts their file.
    const taken: FileBatch = plan.rows === batch.rows.length ? batch : { ...batch, rows: batch.rows.slice(0, plan.rows) };
    const deferred = batch.rows.length - plan.rows;
    const written = { rows: plan.rows, ...(deferred === 0 ? {} : { deferredRows: deferred }) };
    if (file.size > 0 && plan.header !== onDisk) {
      // SPEC section 4: never write under a wrong column. A file without a
      // whole header, or not starting with received_at (say, Flask10X's),
      // is archived like one that lacks a key.
      // Rows a dead attempt already wrote into this file stay here, in what becomes the archive.
      const resumedRows = onDisk === null ? 0 : rowsAlreadyWritten(fs, file, onDisk, taken);
      // The old file becomes an archive that vouches for all of it, a dead attempt's rows included.
      fs.fsyncSync(file.fd);
      const archived = { state, size: file.size };
      closeFile(fs, file);
      const known = new Set(onDisk);
      const added = plan.header.filter((column) => !known.has(column));
      const was = resumedRows > 0 ? pointFor(batch.resume, file.ino) : undefined;
      const widened = replaceWithWidened(dataDir, batch.fileName, taken.rows, { skip: resumedRows, was }, index, plan.header, deps, archived);
      return {
        ...outcome,
        ...widened,
        ...written,
        addedColumns: added,
        ...(plan.reset ? { reset: true as const } : {}),
        ...(resumedRows === 0 ? {} : { resumedRows }),
      };
    }

    const created = file.size === 0;
    const header = plan.header;
    const headerText = created ? encodeLine(header) : '';
    const inPlace = created ? { count: 0, end: 0 } : rowsInPlace(fs, file, header, taken);
    const resumedRows = inPlace.count;
    const rows = resumedRows === 0 ? taken.rows : taken.rows.slice(resumedRows);
    const bytes = Buffer.from(headerText + encodeRows(header, rows), 'utf8');
    const found = resumedRows > 0 ? pointFor(batch.resume, file.ino) : undefined;
    const point: ResumePoint = found ?? { ino: file.ino, rowsStart: file.size + Buffer.byteLength(headerText) };
    if (deps.journal !== undefined) noteWrite(deps.journal, index, point);
    // A resumed batch's rows were written by a thread that died, perhaps before its fsyncs.
    const fsyncSeconds = appendDurably(fs, file, bytes, created || resumedRows > 0 ? dirname(path) : null, point);
    const end = fs.fstatSync(file.fd).size;
    const ourEnd = file.size + bytes.length;
    if (end === ourEnd) rememberRowEnd(path, file.ino, end);
    else forgetRowEnd(path); // someone appended while we wrote (a lock gone stale): scan next time
    const synced = trackState(() => recordSynced(fs, path, state, ourEnd));
    return {
      ...outcome,
      ...(synced.state === undefined ? {} : { fileId: synced.state.id, end: ourEnd }),
      ...(synced.error === undefined ? {} : { stateError: synced.error }),
      ...written,
      bytes: bytes.length,
      created,
      fsyncSeconds,
      ...(resumedRows === 0 ? {} : { resumedRows }),
      // Every row of this batch was found in place: the dead attempt may have
      // written later rows (not in this batch) right after them.
      ...(resumedRows > 0 && resumedRows === taken.rows.length ? { resumeNext: { ino: file.ino, rowsStart: inPlace.end } } : {}),
    };
  } finally {
    closeFile(fs, file);
  }
}

/** What one commit writes to a file: its leading `rows`, under `header`. */
interface HeaderPlan {
  /** The header the rows go under: the file's own (same array) when they fit it, else a new file's. */
  readonly header: readonly string[];
  readonly rows: number;
  /** The new header is not a widening of the old one but starts again (SPEC section 11). */
  readonly reset: boolean;
}

/**
 * Walks the batch request by request (SPEC sections 4 and 11). A request
 * whose columns the header has goes under it; one that brings new keys
 * widens it (the batch then goes whole into a new file), as long as the
 * header stays within `maxColumns` besides received_at. A first request that
 * would pass it starts a new header of its own columns (a reset); a later one
 * ends what this commit writes, so it starts the next commit's file. A file
 * already wider than `maxColumns` (written before the limit) is reset too.
 */
export function planHeader(onDisk: readonly string[] | null, batch: FileBatch, maxColumns: number): HeaderPlan {
  const usable = onDisk !== null && onDisk[0] === RECEIVED_AT;
  let header: readonly string[] | null = usable && onDisk.length - 1 <= maxColumns ? onDisk : null;
  let reset = usable && header === null;
  let known = new Set(header);
  let rows = 0;
  for (const size of batch.requests ?? [batch.rows.length]) {
    const end = rows + size;
    // The request's header cells the header lacks, in first-seen order (usually none: no allocation).
    let added: Set<string> | undefined;
    for (let r = rows; r < end; r++) {
      for (const column of (batch.rows[r] as Row).columns) {
        const cell = guardCell(column);
        if (!known.has(cell)) (added ??= new Set()).add(cell);
      }
    }
    if (header === null || (added !== undefined && header.length - 1 + added.size > maxColumns)) {
      if (header !== null && rows > 0) break; // the next commit starts its file
      reset ||= header !== null;
      header = [RECEIVED_AT, ...headerColumns(batch.rows.slice(rows, end))];
      known = new Set(header);
    } else if (added !== undefined) {
      header = [...header, ...added];
      for (const column of added) known.add(column);
    }
    rows = end;
  }
  return { header: header ?? [RECEIVED_AT], rows, reset };
}

/**
 * An archive-and-widen cut short between its two renames (the thread died, or
 * the second rename and the rename back both failed): the old file is already
 * the archive, and the new one, fsynced before the renames began, still
 * waits as `<file>.new`. Puts it in place. Returns whether it did.
 */
function completeWiden(fs: WriterFs, path: string): boolean {
  const nextPath = `${path}.new`;
  const archivedAs = readFileState(fs, path)?.archivedAs;
  if (archivedAs === undefined || !fs.existsSync(nextPath) || !fs.existsSync(join(dirname(path), archivedAs))) return false;
  fs.renameSync(nextPath, path);
  fsyncDirectory(fs, dirname(path));
  return true;
}

/** Whether what was appended since we last knew the file ends part-way through a row. */
function tailIsCut(fs: WriterFs, path: string, file: OpenFile): boolean {
  const from = knownRowEnd(path, file.ino, file.size);
  return from < file.size && endOfLastRow(fs, file.fd, file.size, from) !== file.size;
}

/**
 * One write of whole rows, then fsync (and the directory's, for a new entry).
 * If any step fails, the file is cut back to its length before, so a retry
 * neither appends after half a row nor writes fsync-failed rows twice. If
 * even the cut fails, the error carries where the rows began, so the retry
 * skips the ones that are there.
 */
function appendDurably(fs: WriterFs, file: OpenFile, bytes: Buffer, dirToSync: string | null, resume: ResumePoint): number {
  try {
    writeAll(fs, file.fd, bytes);
    const started = process.hrtime.bigint();
    fs.fsyncSync(file.fd);
    const fsyncSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (dirToSync !== null) fsyncDirectory(fs, dirToSync);
    return fsyncSeconds;
  } catch (error) {
    try {
      fs.ftruncateSync(file.fd, file.size);
    } catch {
      throw Object.assign(error as Error, { resume });
    }
    throw error;
  }
}

/**
 * Archive-and-widen without a window where the old columns could be lost:
 * the widened file is written and fsynced beside the current one
 * (`<file>.new`), then the current file is renamed to its archive name and
 * the new one into its place, and the directory is fsynced.
 */
function replaceWithWidened(
  dataDir: string,
  fileName: string,
  batchRows: readonly Row[],
  /** `skip`: the batch's leading rows already in the old file (which becomes the archive), found at `was`: not written again. */
  resumed: { readonly skip: number; readonly was: ResumePoint | undefined },
  index: number,
  header: readonly string[],
  deps: WriteDeps,
  old: { readonly state: FileState; readonly size: number },
): { bytes: number; created: true; fsyncSeconds: number; archivedAs: string; fileId?: string; end?: number; archived?: { id: string; end: number }; stateError?: string } {
  const { fs } = deps;
  const path = join(dataDir, fileName);
  const nextPath = `${path}.new`;
  const headerText = encodeLine(header);
  const { skip, was } = resumed;
  const bytes = Buffer.from(headerText + encodeRows(header, skip === 0 ? batchRows : batchRows.slice(skip)), 'utf8');
  const next: OpenFile = { ...openForAppend(fs, nextPath), size: 0 };
  let fsyncSeconds: number;
  try {
    fs.ftruncateSync(next.fd, 0); // a leftover from a crash
    writeAll(fs, next.fd, bytes);
    const started = process.hrtime.bigint();
    fs.fsyncSync(next.fd);
    fsyncSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  } catch (error) {
    closeFile(fs, next);
    try {
      fs.unlinkSync(nextPath);
    } catch {
      // Overwritten by the next attempt.
    }
    throw error;
  }
  closeFile(fs, next);
  // Noted before the renames, with the point it replaces: a thread that dies between them, or a
  // rename that fails, leaves whichever file is current described (see completeWiden).
  const placed: ResumePoint = {
    ino: next.ino,
    rowsStart: Buffer.byteLength(headerText),
    ...(skip === 0 ? {} : { skip }),
    ...(was === undefined ? {} : { was }),
  };
  if (deps.journal !== undefined) noteWrite(deps.journal, index, placed);
  const archivedAs = freeArchiveName(fs, dataDir, fileName, deps.now());
  // Marked first (durably), so a crash between the renames cannot leave the old id on the new file.
  markArchiving(fs, path, { ...old.state, synced: old.size }, basename(archivedAs));
  try {
    fs.renameSync(path, join(dataDir, archivedAs));
    try {
      fs.renameSync(nextPath, path);
    } catch (error) {
      fs.renameSync(join(dataDir, archivedAs), path);
      throw error;
    }
  } catch (error) {
    throw Object.assign(error as Error, { resume: placed });
  }
  rememberRowEnd(path, next.ino, bytes.length);
  try {
    // The renames are made durable before the states that describe them.
    fsyncDirectory(fs, dirname(path));
  } catch (error) {
    // The rows are in place; only the renames may not be durable yet. The
    // retry finds the rows, skips them, and fsyncs the directory again; the
    // mark left on the state lets that write complete the move.
    throw Object.assign(error as Error, { resume: placed });
  }
  const archivedState = { id: old.state.id, created: old.state.created, synced: old.size };
  const moved = trackState(() => {
    writeFileStateDurably(fs, join(dataDir, archivedAs), archivedState);
    return archivedState;
  });
  const fresh = { id: newFileId(), created: deps.now(), synced: bytes.length };
  // If the move failed, the mark stays, and the next batch completes it and gives a new id.
  const started = moved.error !== undefined ? undefined : trackState(() => {
    writeFileStateDurably(fs, path, fresh);
    return fresh;
  });
  const stateError = moved.error ?? started?.error;
  return {
    bytes: bytes.length,
    created: true,
    fsyncSeconds,
    archivedAs,
    ...(started?.state === undefined ? {} : { fileId: fresh.id, end: bytes.length }),
    ...(moved.state === undefined ? {} : { archived: { id: moved.state.id, end: moved.state.synced } }),
    ...(stateError === undefined ? {} : { stateError }),
  };
}

/**
 * Runs a step that keeps a file's state. A failure there must not fail a
 * write whose rows are safe: the rows stay, the next batch under the lock
 * sets the state right, and the forwarder waits for it meanwhile.
 */
function trackState(step: () => FileState): { state?: FileState; error?: string } {
  try {
    return { state: step() };
  } catch (error) {
    return { error: `${errorCode(error)}: ${errorMessage(error)}` };
  }
}

/**
 * After a writer thread died mid-batch: how many of the batch's leading rows
 * are already in the file where that thread began writing them. They are
 * compared byte for byte, so a row is skipped only if it is there exactly.
 */
function rowsAlreadyWritten(fs: WriterFs, file: OpenFile, header: readonly string[], batch: FileBatch): number {
  return rowsInPlace(fs, file, header, batch).count;
}

/**
 * The leading rows found in place (the point's skipped rows, in an earlier
 * file, count as found), and the offset just past them.
 */
function rowsInPlace(fs: WriterFs, file: OpenFile, header: readonly string[], batch: FileBatch): { count: number; end: number } {
  const point = pointFor(batch.resume, file.ino);
  if (point === undefined || point.rowsStart > file.size) return { count: 0, end: 0 };
  let offset = point.rowsStart;
  let count = Math.min(point.skip ?? 0, batch.rows.length);
  for (const row of count === 0 ? batch.rows : batch.rows.slice(count)) {
    const expected = Buffer.from(encodeRows(header, [row]), 'utf8');
    if (offset + expected.length > file.size) break;
    const actual = Buffer.alloc(expected.length);
    fs.readSync(file.fd, actual, 0, expected.length, offset);
    if (!actual.equals(expected)) break;
    offset += expected.length;
    count++;
  }
  return { count, end: offset };
}

/**
 * The file's header cells. A file's first line never changes while it keeps
 * its inode, so the cached header is used without reading when nobody else
 * has written since our last batch; otherwise the line is read and compared.
 */
function readHeader(fs: WriterFs, path: string, file: OpenFile): string[] | null {
  const cached = cachedHeader(path, file.ino);
  if (cached !== undefined) {
    if (knownRowEnd(path, file.ino, file.size) === file.size) return cached.cells;
    const start = Buffer.allocUnsafe(cached.line.length);
    if (readFully(fs, file.fd, start, start.length, 0) === start.length && start.equals(cached.line)) return cached.cells;
  }
  // No whole first line (none within MAX_HEADER_BYTES): not a header of ours, and the file is archived like one without a header.
  const header = readHeaderRecord(fs, file.fd, file.size);
  if (header === null) return null;
  rememberHeader(path, file.ino, Buffer.from(header.line), header.fields);
  return header.fields;
}

/** The archive name for the current file (`data.20261123T101500Z.csv`, `-1` … if taken). */
/** A name free in both forms: an archive compressed since (`<name>.gz`, SPEC section 12) still holds it. */
function freeArchiveName(fs: WriterFs, dataDir: string, fileName: string, now: number): string {
  for (let attempt = 0; ; attempt++) {
    const name = archiveFileName(fileName, now, attempt);
    if (!fs.existsSync(join(dataDir, name)) && !fs.existsSync(join(dataDir, `${name}.gz`))) return name;
  }
}


function resumeOf(error: unknown): ResumePoint | undefined {
  return (error as { resume?: ResumePoint } | null)?.resume;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
