import type * as nodeFs from 'node:fs';

/**
 * The file-system calls the writer thread makes: real `node:fs` in
 * production, a wrapper that injects EIO, ENOSPC or short writes in tests.
 * Synchronous on purpose: they run on the writer thread, never the main one.
 */
export type WriterFs = Pick<
  typeof nodeFs,
  | 'openSync'
  | 'closeSync'
  | 'fstatSync'
  | 'readSync'
  | 'writeSync'
  | 'fsyncSync'
  | 'ftruncateSync'
  | 'renameSync'
  | 'existsSync'
  | 'readdirSync'
  | 'unlinkSync'
  | 'mkdirSync'
>;

/** A new or renamed directory entry is durable only once the directory itself is fsynced. */
export function fsyncDirectory(fs: Pick<WriterFs, 'openSync' | 'fsyncSync' | 'closeSync'>, dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes every byte, looping over short writes; at `position` when given
 * (a state line rewritten in place), else at the file's end (appending).
 */
export function writeAll(fs: Pick<WriterFs, 'writeSync'>, fd: number, bytes: Buffer, position?: number): void {
  for (let offset = 0; offset < bytes.length; ) {
    const left = bytes.length - offset;
    const written = position === undefined ? fs.writeSync(fd, bytes, offset, left) : fs.writeSync(fd, bytes, offset, left, position + offset);
    if (written <= 0) throw Object.assign(new Error('write made no progress'), { code: 'ESHORTWRITE' });
    offset += written;
  }
}
