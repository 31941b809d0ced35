/**
 * COMPRESS_CLOSED=gzip (SPEC section 12), for the ingest server and the
 * collector: at start-up and then every minute, each closed file that may be
 * compressed (storage/stream-files.ts, isCompressible) and whose rows are
 * safe elsewhere (with forwarding on: JetStream has acknowledged them all) is
 * compressed to `<file>.gz`, one at a time, by storage/compress.ts. An INFO
 * `compressed file` for each, and `compress_files_total`.
 *
 * Also clears what a kill during a compression leaves behind once its file
 * has gone (retention removed it): the temporary `.gz.tmp` and the `.gz`
 * state written before the rename, or a plain file's state that outlived it.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { COMPRESSED_SUFFIX, COMPRESSING_SUFFIX } from '../storage/compressed.js';
import { type CompressOptions, compressClosedFile } from '../storage/compress.js';
import { csvNameOfState, readFileStateAsync, stateDirOf, statePathOf } from '../storage/file-state.js';
import type { LockFile } from '../storage/lock.js';
import type { ListedFile } from '../storage/stream-files.js';
import { safeMessage } from '../shared/redaction.js';

export const COMPRESSION_INTERVAL_MS = 60_000;

export interface CompressionDeps {
  readonly enabled: boolean;
  readonly logger: Logger;
  /** The program's stream files (the ingest server's streams, the collector's site folders). */
  readonly listFiles: () => Promise<readonly ListedFile[]>;
  /** Whether a closed file's rows are safe elsewhere (always, without forwarding). */
  readonly safe: (path: string) => boolean;
  /** Should give up soon on a held lock (ELOCKED): a file held now is tried again at the next pass. */
  readonly lock: LockFile;
  readonly onCompressed?: () => void;
  /** Run every COMPRESSION_INTERVAL_MS (off in tests that call run()). */
  readonly watch?: boolean;
  /** Tests stop a compression part-way. */
  readonly afterStep?: CompressOptions['afterStep'];
}

export interface Compression {
  /** One pass; asked for while one runs, one more pass follows it (both are waited for). */
  run(): Promise<void>;
  /** Stops: a compression under way is abandoned (its plain file stays) and waited for. */
  close(): Promise<void>;
}

export function createCompression(deps: CompressionDeps): Compression {
  const log = deps.logger.child({ component: 'compression' });
  const abort = new AbortController();
  /** Files already warned about: one WARN each until it works, not one a minute. */
  const warned = new Set<string>();
  let running: Promise<void> | undefined;

  async function pass(): Promise<void> {
    const files = await deps.listFiles();
    for (const { path, compressible } of files) {
      if (abort.signal.aborted) return;
      if (compressible !== true || !deps.safe(path)) continue;
      await compressOne(path);
    }
    for (const dir of new Set(files.map((file) => dirname(file.path)))) await clearLeftovers(dir);
  }

  async function compressOne(path: string): Promise<void> {
    const file = basename(path);
    try {
      const result = await compressClosedFile(path, { lock: deps.lock, signal: abort.signal, ...(deps.afterStep === undefined ? {} : { afterStep: deps.afterStep }) });
      if (result.outcome === 'compressed') {
        warned.delete(file);
        log.info({ file, bytes: result.plainBytes, compressed_bytes: result.storedBytes }, 'compressed file');
        deps.onCompressed?.();
      } else if (result.outcome === 'skipped' && result.why === 'name taken' && !warned.has(file)) {
        warned.add(file);
        log.info({ file, compressed: file + COMPRESSED_SUFFIX }, 'file left uncompressed: rows came after its day was compressed');
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return; // removed meanwhile (retention, a peer)
      // Held by another (a peer compressing it) or left by a killed process: the next pass tries again,
      // and takes a dead holder's lock over once it is stale (10 s). The others need not wait for it.
      if (code === 'ELOCKED') return;
      if (!warned.has(file)) log.warn({ file, err: safeMessage(error) }, 'compression failed; trying again');
      warned.add(file);
    }
  }

  /**
   * What a kill during a compression leaves once its plain file has gone: the
   * temporary `.gz` and the `.gz` state written before its rename, or the
   * plain file's state when the kill fell between removing the file and it.
   */
  async function clearLeftovers(dir: string): Promise<void> {
    const names = await readdir(dir).catch((): string[] => []);
    for (const state of await readdir(stateDirOf(dir)).catch((): string[] => [])) {
      const name = csvNameOfState(state);
      if (name === null || name.endsWith(COMPRESSED_SUFFIX) || names.includes(name) || !names.includes(name + COMPRESSED_SUFFIX)) continue;
      await underLock(join(dir, name), async (plain) => {
        const gz = await readFileStateAsync(plain + COMPRESSED_SUFFIX).catch(() => null);
        if (!(await present(plain)) && gz !== null && gz.id === (await readFileStateAsync(plain).catch(() => null))?.id) await unlink(statePathOf(plain)).catch(() => {});
      });
    }
    for (const name of names) {
      if (!name.endsWith(`.csv${COMPRESSING_SUFFIX}`)) continue;
      await underLock(join(dir, name.slice(0, -COMPRESSING_SUFFIX.length)), async (plain) => {
        if (await present(plain)) return; // its compression is to come, and starts the temporary file again
        await unlink(join(dir, name)).catch(() => {});
        if (!(await present(plain + COMPRESSED_SUFFIX))) await unlink(statePathOf(plain + COMPRESSED_SUFFIX)).catch(() => {});
      });
    }
  }

  /** Runs `work` holding the file's lock; a held lock means next pass. */
  async function underLock(path: string, work: (path: string) => Promise<void>): Promise<void> {
    try {
      const release = await deps.lock(path);
      try {
        await work(path);
      } finally {
        await release().catch(() => {});
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOCKED') return;
      log.warn({ file: basename(path), err: safeMessage(error) }, 'cannot remove a compression leftover');
    }
  }

  /** Asked for again while a pass ran (a new archive it may have listed too early): one more pass follows. */
  let again = false;
  async function passes(): Promise<void> {
    do {
      again = false;
      await pass().catch((error: unknown) => log.warn({ err: safeMessage(error) }, 'compression pass failed'));
    } while (again && !abort.signal.aborted);
  }

  const run = (): Promise<void> => {
    if (!deps.enabled || abort.signal.aborted) return Promise.resolve();
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = passes().finally(() => {
      running = undefined;
    });
    return running;
  };

  let timer: NodeJS.Timeout | undefined;
  if (deps.enabled && (deps.watch ?? true)) {
    void run();
    timer = setInterval(() => void run(), COMPRESSION_INTERVAL_MS);
    timer.unref();
  }
  return {
    run,
    async close() {
      clearInterval(timer);
      abort.abort();
      await running;
    },
  };
}

async function present(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}
