/** A small disk to fill up: a tmpfs the test mounts (as root, as CI runs) and fills until ENOSPC. */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const NO_TMPFS = 'cannot mount a tmpfs here (needs root); the disk-full tests run in CI, which runs as root';

const mounted: string[] = [];

/** Mounts a tmpfs of `size` at `path`; false where mounting is not allowed (not root, no CAP_SYS_ADMIN). */
export function mountTmpfs(path: string, size: string): boolean {
  mkdirSync(path, { recursive: true });
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]);
  if (result.status !== 0) return false;
  mounted.push(path);
  return true;
}

/** Unmounts every tmpfs mounted so far. */
export function unmountAll(): void {
  for (const path of mounted.splice(0)) spawnSync('umount', [path]);
}

/** Fills the file system holding `dirPath` until ENOSPC; returns the filler's path. */
export function fill(dirPath: string): string {
  const path = join(dirPath, 'filler.bin');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096, 0x61);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
  return path;
}
