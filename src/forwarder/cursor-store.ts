/**
 * The forwarder's place in each file, on disk: `<DATA_DIR>/.sensor-ingest/
 * cursors/<file id>` holds the offset up to which JetStream has acknowledged
 * every row. Keyed by file id, so it follows a file through its archive
 * rename. Advanced only after the acks and fsynced, a few times a second at
 * most and off the main thread (ingest must not wait on these fsyncs): a
 * restart re-sends at most the rows acked since, under the same message ids,
 * which JetStream and the collector both drop.
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { STATE_DIR } from '../storage/file-state.js';

const DIGITS = 16;
const FLUSH_EVERY_MS = 200;

export interface CursorStore {
  /** The acknowledged offset, or null for a file never forwarded from. */
  read(fileId: string): number | null;
  /** Records the offset; it reaches the disk (fsynced) within a fraction of a second. */
  write(fileId: string, offset: number): void;
  /** Writes every offset recorded so far, durably. */
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Stops without writing what is pending (the lock was lost: another process owns the cursors now). */
  abandon(): void;
}

export function cursorDirOf(dataDir: string): string {
  return join(dataDir, STATE_DIR, 'cursors');
}

export function createCursorStore(dataDir: string, fs: typeof nodeFs = nodeFs, onError: (error: unknown) => void = () => {}): CursorStore {
  const dir = cursorDirOf(dataDir);
  fs.mkdirSync(dir, { recursive: true });
  const pathOf = (fileId: string): string => join(dir, fileId);
  const pending = new Map<string, number>();
  /** Every offset recorded in this process: reads never see an older one while a flush is on its way. */
  const latest = new Map<string, number>();
  const known = new Set<string>();
  let flushing: Promise<void> = Promise.resolve();

  /** Writes `text` at the start of the file opened with `flags`, and fsyncs it. */
  async function writeSynced(path: string, flags: 'r+' | 'w', text: string): Promise<void> {
    const handle = await fs.promises.open(path, flags);
    try {
      await handle.write(text, 0, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async function writeOne(fileId: string, offset: number): Promise<void> {
    const text = `${String(offset).padStart(DIGITS, '0')}\n`;
    const path = pathOf(fileId);
    if (known.has(fileId) || fs.existsSync(path)) {
      known.add(fileId);
      // Same length every time: rewritten in place, then fsynced.
      await writeSynced(path, 'r+', text);
      return;
    }
    const temporary = `${path}.tmp`;
    await writeSynced(temporary, 'w', text);
    await fs.promises.rename(temporary, path);
    const folder = await fs.promises.open(dir, 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
    known.add(fileId);
  }

  function flush(): Promise<void> {
    // Each flush runs after the one before, whether that one failed or not.
    flushing = flushing.catch(() => {}).then(async () => {
      const batch = [...pending];
      pending.clear();
      let failure: Error | undefined;
      for (const [fileId, offset] of batch) {
        try {
          await writeOne(fileId, offset);
        } catch (error) {
          // Tried again with the next flush, unless a newer offset has come meanwhile.
          if (!pending.has(fileId)) pending.set(fileId, offset);
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
      if (failure !== undefined) {
        onError(failure);
        throw failure;
      }
    });
    return flushing;
  }

  const timer = setInterval(() => {
    if (pending.size > 0) flush().catch(() => {});
  }, FLUSH_EVERY_MS);
  timer.unref();

  return {
    read(fileId) {
      const recorded = latest.get(fileId);
      if (recorded !== undefined) return recorded;
      try {
        const text = fs.readFileSync(pathOf(fileId), 'utf8');
        return /^\d{1,16}\n$/.test(text) ? Number(text) : null;
      } catch {
        return null;
      }
    },
    write(fileId, offset) {
      pending.set(fileId, offset);
      latest.set(fileId, offset);
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
    abandon() {
      clearInterval(timer);
      pending.clear();
    },
  };
}
