/**
 * Which file a row goes to, and the names of archives and cut-off pieces
 * (SPEC sections 4 and 9). Pure: imported by the worker thread.
 */
export type Rotation = 'none' | 'daily';

/** `<stream>.csv`, or `<stream>-YYYY-MM-DD.csv` for the UTC day the row was received. */
export function currentFileName(stream: string, receivedAtMs: number, rotate: Rotation): string {
  if (rotate === 'none') return `${stream}.csv`;
  return `${stream}-${new Date(receivedAtMs).toISOString().slice(0, 10)}.csv`;
}

/** `YYYYMMDDTHHMMSSZ`, the UTC time used in archive and partial names. */
export function nameTimestamp(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** `data.csv` → `data.20261123T101500Z.csv`, then `…Z-1.csv`, `…Z-2.csv` if taken. */
export function archiveFileName(fileName: string, epochMs: number, attempt: number): string {
  const base = fileName.replace(/\.csv$/, '');
  const suffix = attempt === 0 ? '' : `-${attempt}`;
  return `${base}.${nameTimestamp(epochMs)}${suffix}.csv`;
}

/** `data.csv` → `data.csv.partial-20261123T101500Z`, then `…Z-1` if taken. */
export function partialFileName(fileName: string, epochMs: number, attempt: number): string {
  const suffix = attempt === 0 ? '' : `-${attempt}`;
  return `${fileName}.partial-${nameTimestamp(epochMs)}${suffix}`;
}

/**
 * The files that are a stream's current files (not archives): `data.csv`, or
 * with daily rotation `data-YYYY-MM-DD.csv` for any day.
 */
export function isCurrentFileOf(stream: string, fileName: string, rotate: Rotation): boolean {
  if (rotate === 'none') return fileName === `${stream}.csv`;
  return fileName.startsWith(`${stream}-`) && /^\d{4}-\d{2}-\d{2}\.csv$/.test(fileName.slice(stream.length + 1));
}
