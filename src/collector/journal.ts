/**
 * The collector's memory of what it has written (SPEC section 10, exactly
 * once): for every edge file (site and file id), the byte ranges of the rows
 * written centrally, and for every central file (by its own file id) the
 * length those writes reached. One JSON line is appended and fsynced after
 * each batch's rows are fsynced, before the batch is acked:
 *
 *   {"ends":{"<central file id>":<length>,…},"rows":[["<site>","<file id>",<start>,<end>],…]}
 *
 * Rows come back to back, so the ranges of a file merge into one or a few:
 * the memory is small however many rows there are. At start-up a central file
 * longer than its journaled length ends in rows written but not journaled (a
 * crash in between): they are cut off and, never acked, come again.
 * A high-water mark would not do: a killed collector's unacked messages come
 * back only after the ack wait, behind newer ones already written.
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { readFileState } from '../storage/file-state.js';
import { fsyncDirectory } from '../storage/fs.js';
import type { RowOrigin } from '../nats/row-message.js';

export interface WrittenRow {
  readonly origin: RowOrigin;
  /** Where the row ends in the edge's file: its offset plus its length there. */
  readonly end: number;
}

export interface CollectJournal {
  /** Whether the row at this origin has been written. */
  has(origin: RowOrigin): boolean;
  /** The length a central file reached with journaled writes, or undefined if none. */
  endOf(centralFileId: string): number | undefined;
  /** Records a batch, durably: the central files' new lengths and the rows written. */
  append(ends: ReadonlyMap<string, number>, rows: readonly WrittenRow[]): void;
  /** Edge files known, and ranges kept: for tests and the log. */
  size(): { files: number; ranges: number };
  close(): void;
}

type Range = [start: number, end: number];

interface JournalLine {
  readonly ends?: Record<string, number>;
  readonly rows?: Array<[string, string, number, number]>;
}

/** Past this many lines, start-up rewrites the journal as one line. */
const COMPACT_AFTER_LINES = 2000;

/**
 * Whether the journal holds every row of the central file at `csvPath`, so
 * it may be compressed (SPEC section 12): start-up repair cuts rows written but
 * not journaled out of plain files only, and JetStream hands them out again.
 */
export function isJournaledWhole(journal: Pick<CollectJournal, 'endOf'>, csvPath: string): boolean {
  try {
    const state = readFileState(nodeFs, csvPath);
    return state !== null && (journal.endOf(state.id) ?? -1) >= state.synced;
  } catch {
    return false;
  }
}

export function journalPathOf(dataDir: string): string {
  return join(dataDir, '.sensor-ingest', 'collected.journal');
}

/** Reads the journal (a cut last line is a batch never acked: ignored), compacts it if long, and opens it to append. */
export function openCollectJournal(dataDir: string, fs: typeof nodeFs = nodeFs): CollectJournal {
  const path = journalPathOf(dataDir);
  fs.mkdirSync(join(dataDir, '.sensor-ingest'), { recursive: true });
  const ranges = new Map<string, Range[]>();
  const ends = new Map<string, number>();

  const keyOf = (site: string, fileId: string): string => `${site}:${fileId}`;

  function add(site: string, fileId: string, start: number, end: number): void {
    const key = keyOf(site, fileId);
    let list = ranges.get(key);
    if (list === undefined) ranges.set(key, (list = []));
    insertRange(list, start, end);
  }

  function apply(line: JournalLine): void {
    for (const [id, end] of Object.entries(line.ends ?? {})) ends.set(id, end);
    for (const [site, fileId, start, end] of line.rows ?? []) add(site, fileId, start, end);
  }

  let lines = 0;
  let text = '';
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (line === '') continue;
    apply(JSON.parse(line) as JournalLine);
    lines++;
  }

  const snapshot = (): string => {
    const rows: Array<[string, string, number, number]> = [];
    for (const [key, list] of ranges) {
      const [site, fileId] = key.split(':') as [string, string];
      for (const [start, end] of list) rows.push([site, fileId, start, end]);
    }
    return `${JSON.stringify({ ends: Object.fromEntries(ends), rows })}\n`;
  };

  /** Rewrites the journal as one line: written beside, fsynced, renamed over. */
  function compact(): void {
    const temporary = `${path}.tmp`;
    const tmpFd = fs.openSync(temporary, 'w');
    try {
      fs.writeSync(tmpFd, snapshot());
      fs.fsyncSync(tmpFd);
    } finally {
      fs.closeSync(tmpFd);
    }
    fs.renameSync(temporary, path);
    fsyncDirectory(fs, join(dataDir, '.sensor-ingest'));
    lines = 1;
  }

  // A long journal, or one ending in a cut line, starts afresh as one line.
  if (lines > COMPACT_AFTER_LINES || complete.length !== text.length) compact();
  let fd = fs.openSync(path, 'a');

  return {
    has(origin) {
      const list = ranges.get(keyOf(origin.site, origin.fileId));
      return list !== undefined && findRange(list, origin.offset) >= 0;
    },
    endOf: (id) => ends.get(id),
    append(newEnds, rows) {
      const line: JournalLine = {
        ends: Object.fromEntries(newEnds),
        rows: compactRows(rows),
      };
      fs.writeSync(fd, `${JSON.stringify(line)}\n`);
      fs.fsyncSync(fd);
      apply(line);
      // A line a batch: a collector that runs for months compacts as it goes, not only at start-up.
      if (++lines > COMPACT_AFTER_LINES) {
        fs.closeSync(fd);
        compact();
        fd = fs.openSync(path, 'a');
      }
    },
    size() {
      let count = 0;
      for (const list of ranges.values()) count += list.length;
      return { files: ranges.size, ranges: count };
    },
    close() {
      fs.closeSync(fd);
    },
  };
}

/** A batch's rows as ranges: back-to-back rows of one file become one entry. */
function compactRows(rows: readonly WrittenRow[]): Array<[string, string, number, number]> {
  const out: Array<[string, string, number, number]> = [];
  const last = new Map<string, [string, string, number, number]>();
  for (const { origin, end } of rows) {
    const key = `${origin.site}:${origin.fileId}`;
    const previous = last.get(key);
    if (previous !== undefined && previous[3] === origin.offset) {
      previous[3] = end;
      continue;
    }
    const entry: [string, string, number, number] = [origin.site, origin.fileId, origin.offset, end];
    out.push(entry);
    last.set(key, entry);
  }
  return out;
}

/** Index of the range holding `offset`, or -1. `list` is sorted and non-overlapping. */
function findRange(list: readonly Range[], offset: number): number {
  let low = 0;
  let high = list.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const [start, end] = list[middle] as Range;
    if (offset < start) high = middle - 1;
    else if (offset >= end) low = middle + 1;
    else return middle;
  }
  return -1;
}

/** Adds [start, end) to the sorted list, merging it with ranges it touches. */
export function insertRange(list: Range[], start: number, end: number): void {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((list[middle] as Range)[1] < start) low = middle + 1;
    else high = middle;
  }
  // list[low] is the first range that ends at or after `start`.
  const first = low;
  let last = low;
  let newStart = start;
  let newEnd = end;
  while (last < list.length && (list[last] as Range)[0] <= newEnd) {
    newStart = Math.min(newStart, (list[last] as Range)[0]);
    newEnd = Math.max(newEnd, (list[last] as Range)[1]);
    last++;
  }
  list.splice(first, last - first, [newStart, newEnd]);
}
