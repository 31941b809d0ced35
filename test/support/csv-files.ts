/** Reading what the server wrote: CSV files parsed strictly, a file's text, a data dir's files. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { parse } from 'csv-parse/sync';

/** Parses a CSV file into records (header first); [] if the file does not exist. */
export function readCsv(path: string): string[][] {
  if (!existsSync(path)) return [];
  return parse(readFileSync(path, 'utf8'), { relaxColumnCount: false });
}

/** The file's bytes as text, or null if it does not exist. */
export function fileText(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Every file in a directory, sorted, without lock directories. */
export function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => !name.endsWith('.lock') && !name.startsWith('.'))
    .sort();
}
