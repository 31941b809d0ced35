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
