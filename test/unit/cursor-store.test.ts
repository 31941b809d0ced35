import * as nodeFs from 'node:fs';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCursorStore, cursorDirOf } from '../../src/forwarder/cursor-store.js';
import { useTempDir } from '../support/temp-dir.js';

const ID = '0123456789abcdef';

const dir = useTempDir();

describe('createCursorStore', () => {
  it('keeps cursors in DATA_DIR/.sensor-ingest/cursors, made on creation', () => {
    createCursorStore(dir.path);
    expect(cursorDirOf(dir.path)).toBe(join(dir.path, '.sensor-ingest', 'cursors'));
    expect(statSync(cursorDirOf(dir.path)).isDirectory()).toBe(true);
  });

  it('reads null for a file never forwarded from', () => {
    expect(createCursorStore(dir.path).read(ID)).toBeNull();
  });

  it('reads back what it wrote, per file id, and across a new store once flushed', async () => {
    const store = createCursorStore(dir.path);
    store.write(ID, 4096);
    store.write('fedcba9876543210', 17);
    expect(store.read(ID)).toBe(4096);
    expect(store.read('fedcba9876543210')).toBe(17);
    await store.close();
    expect(createCursorStore(dir.path).read(ID)).toBe(4096);
    expect(readFileSync(join(cursorDirOf(dir.path), ID), 'utf8')).toBe('0000000000004096\n');
    expect(readdirSync(cursorDirOf(dir.path)).sort()).toEqual([ID, 'fedcba9876543210']);
  });

  it('rewrites in place: same inode, always 17 bytes, smaller values leave no digits behind', async () => {
    const store = createCursorStore(dir.path);
    const path = join(cursorDirOf(dir.path), ID);
    store.write(ID, 123_456_789);
    await store.flush();
    const inode = statSync(path).ino;
    for (const offset of [123_456_790, 7, 0, 9_007_199_254_740_991, 42]) {
      store.write(ID, offset);
      await store.flush();
      expect(statSync(path).size).toBe(17);
      expect(statSync(path).ino).toBe(inode);
      expect(createCursorStore(dir.path).read(ID)).toBe(offset);
    }
    await store.close();
  });

  it('writes only the last of many offsets recorded between flushes', async () => {
    const store = createCursorStore(dir.path);
    for (let offset = 1; offset <= 1000; offset++) store.write(ID, offset);
    expect(existsSync(join(cursorDirOf(dir.path), ID))).toBe(false);
    await store.close();
    expect(readFileSync(join(cursorDirOf(dir.path), ID), 'utf8')).toBe('0000000000001000\n');
  });

  it('fsyncs every flush, and the folder when a cursor is new', async () => {
    const synced: string[] = [];
    const open = nodeFs.promises.open;
    const counting = {
      ...nodeFs,
      promises: {
        ...nodeFs.promises,
        open: async (...args: Parameters<typeof open>) => {
          const handle = await open(...args);
          const sync = handle.sync.bind(handle);
          handle.sync = async () => {
            synced.push((await handle.stat()).isDirectory() ? 'dir' : 'file');
            return sync();
          };
          return handle;
        },
      },
    };
    const store = createCursorStore(dir.path, counting);
    store.write(ID, 1);
    await store.flush();
    expect(synced).toEqual(['file', 'dir']);
    synced.length = 0;
    store.write(ID, 2);
    await store.close();
    expect(synced).toEqual(['file']);
    expect(existsSync(join(cursorDirOf(dir.path), `${ID}.tmp`))).toBe(false);
  });

  it.each([
    ['empty', ''],
    ['no newline', '0000000000000005'],
    ['not digits', 'abc\n'],
    ['17 digits', '00000000000000005\n'],
    ['two lines', '1\n2\n'],
  ])('reads null for a cursor file that is %s', (_what, text) => {
    const store = createCursorStore(dir.path);
    writeFileSync(join(cursorDirOf(dir.path), ID), text);
    expect(store.read(ID)).toBeNull();
  });
});

describe('a cursor write that fails', () => {
  it('is reported, kept, and written by the next flush; later flushes still run', async () => {
    let failNext = true;
    const errors: unknown[] = [];
    const open = nodeFs.promises.open;
    const flaky = {
      ...nodeFs,
      promises: {
        ...nodeFs.promises,
        open: async (...args: Parameters<typeof open>) => {
          if (failNext) {
            failNext = false;
            throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
          }
          return open(...args);
        },
      },
    };
    const store = createCursorStore(dir.path, flaky, (error) => errors.push(error));
    store.write(ID, 5);
    await expect(store.flush()).rejects.toThrow('EIO');
    expect(errors).toHaveLength(1);
    await store.flush();
    expect(readFileSync(join(cursorDirOf(dir.path), ID), 'utf8')).toBe('0000000000000005\n');
    store.write(ID, 6);
    await store.close();
    expect(readFileSync(join(cursorDirOf(dir.path), ID), 'utf8')).toBe('0000000000000006\n');
  });
});
