/**
 * The forwarder's place in each file, on disk: `<DATA_DIR>/.sensor-ingest/
 * cursors/<file id>` holds the offset up to which JetStream has acknowledged
 * every row. Keyed by file id, so it follows a file through its archive
 * rename. Advanced only after the acks, and fsynced: a restart re-sends at
 * most what was in flight, under the same message ids.
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { STATE_DIR } from '../writer/file-state.js';

const DIGITS = 16;

export interface CursorStore {
  /** The acknowledged offset, or null for a file never forwarded from. */
  read(fileId: string): number | null;
  /** Records the offset durably. */
  write(fileId: string, offset: number): void;
}

export function cursorDirOf(dataDir: string): string {
  return join(dataDir, STATE_DIR, 'cursors');
}

export function createCursorStore(dataDir: string, fs: typeof nodeFs = nodeFs): CursorStore {
  const dir = cursorDirOf(dataDir);
  fs.mkdirSync(dir, { recursive: true });
  const pathOf = (fileId: string): string => join(dir, fileId);
  return {
    read(fileId) {
      try {
        const text = fs.readFileSync(pathOf(fileId), 'utf8');
        return /^\d{1,16}\n$/.test(text) ? Number(text) : null;
      } catch {
        return null;
      }
    },
    write(fileId, offset) {
      const text = `${String(offset).padStart(DIGITS, '0')}\n`;
      const path = pathOf(fileId);
      if (fs.existsSync(path)) {
        // Same length every time: rewritten in place, then fsynced.
        const fd = fs.openSync(path, 'r+');
        try {
          fs.writeSync(fd, text, 0, 'utf8');
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        return;
      }
      const temporary = `${path}.tmp`;
      const fd = fs.openSync(temporary, 'w');
      try {
        fs.writeSync(fd, text, 0, 'utf8');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(temporary, path);
      const dirFd = fs.openSync(dir, 'r');
      try {
        fs.fsyncSync(dirFd);
      } finally {
        fs.closeSync(dirFd);
      }
    },
  };
}
