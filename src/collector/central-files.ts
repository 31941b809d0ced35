/**
 * The collector's stream files: `DATA_DIR/<site>/<stream>[-<day>][.<archive time>].csv[.gz]`,
 * each with whether it is closed (an archive or a past day's file, SPEC section 12)
 * and may be compressed.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ListedFile } from '../server/retention.js';
import { NAME } from '../shared/names.js';
import { listedFile, matchStreamFile } from '../storage/stream-files.js';

/** A central file name, its stream unknown: the stream is the shortest name the rest of the pattern fits. */
const CENTRAL_FILE = /^([a-z0-9_-]{1,64}?)(?:-\d{4}-\d{2}-\d{2})?(?:\.\d{8}T\d{6}Z(?:-\d{1,6})?)?\.csv(?:\.gz)?$/;

export async function listCentralFiles(dataDir: string, nowMs: number): Promise<ListedFile[]> {
  const listed: ListedFile[] = [];
  for (const site of await readdir(dataDir, { withFileTypes: true })) {
    if (!site.isDirectory() || !NAME.test(site.name)) continue;
    const names = await readdir(join(dataDir, site.name)).catch((): string[] => []);
    for (const name of names.sort()) {
      const stream = CENTRAL_FILE.exec(name)?.[1];
      const file = stream === undefined ? null : matchStreamFile(stream, name);
      if (file !== null) listed.push(listedFile(join(dataDir, site.name, name), file, nowMs));
    }
  }
  return listed;
}
