/**
 * What the writer thread remembers about each file between batches, by path:
 * where it last ended on a row boundary, and its parsed header. Both are
 * keyed to the file's inode, so a renamed-away or replaced file is not
 * mistaken for the one remembered. Bounded: daily rotation adds a path a day.
 */
import type { RowBoundary } from '../../storage/repair.js';

/** Paths remembered at most; the oldest are forgotten first. */
const MAX_PATHS = 512;

interface Remembered {
  readonly ino: number;
  /** Offset just past the last row known whole (0 if unknown). */
  end: number;
  /** The header line's bytes (its `\n` included) and its cells. */
  header?: { readonly line: Buffer; readonly cells: string[] };
}

const files = new Map<string, Remembered>();

function entry(path: string, ino: number): Remembered {
  let remembered = files.get(path);
  if (remembered === undefined || remembered.ino !== ino) {
    remembered = { ino, end: 0 };
    files.delete(path);
    files.set(path, remembered);
    if (files.size > MAX_PATHS) files.delete(files.keys().next().value as string);
  }
  return remembered;
}

/** Up to where the file (this inode, this size) is known to end on a row boundary; 0 if unknown. */
export function knownRowEnd(path: string, ino: number, size: number): number {
  const remembered = files.get(path);
  return remembered !== undefined && remembered.ino === ino && remembered.end <= size ? remembered.end : 0;
}

export function rememberRowEnd(path: string, ino: number, end: number): void {
  entry(path, ino).end = end;
}

export function forgetRowEnd(path: string): void {
  const remembered = files.get(path);
  if (remembered !== undefined) remembered.end = 0;
}

export function rememberRowBoundaries(boundaries: readonly RowBoundary[]): void {
  for (const { path, ino, end } of boundaries) rememberRowEnd(path, ino, end);
}

export function cachedHeader(path: string, ino: number): { readonly line: Buffer; readonly cells: string[] } | undefined {
  const remembered = files.get(path);
  return remembered?.ino === ino ? remembered.header : undefined;
}

export function rememberHeader(path: string, ino: number, line: Buffer, cells: string[]): void {
  entry(path, ino).header = { line, cells };
}
