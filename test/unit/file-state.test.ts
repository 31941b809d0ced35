import * as nodeFs from 'node:fs';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileBatch, FileWritten } from '../../src/writer/task.js';
import {
  type FileState,
  csvNameOfState,
  encodeFileState,
  ensureFileState,
  markArchiving,
  newFileId,
  parseFileState,
  readFileState,
  recordSynced,
  stateDirOf,
  statePathOf,
  writeFileStateDurably,
} from '../../src/storage/file-state.js';
import { type WriteDeps, defaultWriteDeps, writeFileBatch } from '../../src/writer/worker/commit.js';
import type { WriterFs } from '../../src/storage/fs.js';
import { useTempDir } from '../support/temp-dir.js';

const at = Date.UTC(2026, 10, 23, 10, 15, 0);
const ID = /^[0-9a-f]{16}$/;
const row = (columns: string[], cells: string[]) => ({ receivedAt: at, columns, cells });

const dir = useTempDir();

const deps = (fs: WriterFs = nodeFs): WriteDeps => ({ ...defaultWriteDeps, fs, now: () => at });
const write = (batch: FileBatch, fs?: WriterFs) => writeFileBatch(dir.path, batch, deps(fs)) as Promise<FileWritten>;
const csv = (name = 'data.csv') => join(dir.path, name);
const sizeOf = (path: string) => statSync(path).size;
const stateOf = (path: string) => readFileState(nodeFs, path);
/** node:fs without fsyncs: for tests that make many states and do not test durability. */
const noSync: WriterFs = { ...nodeFs, fsyncSync: () => {} };

describe('file state kept by writeFileBatch', () => {
  it('gives a new CSV a 16-hex id, its creation time, and synced equal to the file size', async () => {
    const outcome = await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    const state = stateOf(csv()) as FileState;
    expect(state.id).toMatch(ID);
    expect(state).toEqual({ id: state.id, created: at, synced: sizeOf(csv()) });
    expect(outcome).toMatchObject({ ok: true, fileId: state.id, end: sizeOf(csv()) });
    expect(existsSync(join(dir.path, '.sensor-ingest', 'files', 'data.csv.state'))).toBe(true);
    expect(existsSync(`${statePathOf(csv())}.tmp`)).toBe(false);
  });

  it('keeps the id on the next batch and raises synced to the new size', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    const first = stateOf(csv()) as FileState;
    const stateBytes = sizeOf(statePathOf(csv()));
    const outcome = await write({ fileName: 'data.csv', rows: [row(['a'], ['2']), row(['a'], ['3'])] });
    const second = stateOf(csv()) as FileState;
    expect(second.id).toBe(first.id);
    expect(second.created).toBe(first.created);
    expect(second.synced).toBeGreaterThan(first.synced);
    expect(second.synced).toBe(sizeOf(csv()));
    expect(outcome).toMatchObject({ fileId: first.id, end: sizeOf(csv()) });
    // Rewritten in place: same length.
    expect(sizeOf(statePathOf(csv()))).toBe(stateBytes);
  });

  it('moves the old id to the archive on archive-and-widen, and gives the current file a new id', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] });
    const old = stateOf(csv()) as FileState;
    const outcome = await write({ fileName: 'data.csv', rows: [row(['b'], ['3'])] });
    expect(outcome.archivedAs).toBe('data.20261123T101500Z.csv');
    const archivePath = csv('data.20261123T101500Z.csv');
    const archived = stateOf(archivePath) as FileState;
    const current = stateOf(csv()) as FileState;
    expect(archived).toEqual({ id: old.id, created: old.created, synced: sizeOf(archivePath) });
    expect(current.id).toMatch(ID);
    expect(current.id).not.toBe(old.id);
    expect(current).toEqual({ id: current.id, created: at, synced: sizeOf(csv()) });
    expect(outcome).toMatchObject({ fileId: current.id, end: sizeOf(csv()), archived: { id: old.id, end: sizeOf(archivePath) } });
  });

  it('a batch after a crash between the renames completes the move: the archive gets the old id, the new file a fresh one', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    const old = stateOf(csv()) as FileState;
    const archiveSize = sizeOf(csv());
    // What the writer does before the renames, then a crash after the first one.
    markArchiving(nodeFs, csv(), old, 'data.20261123T101500Z.csv');
    renameSync(csv(), csv('data.20261123T101500Z.csv'));

    await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] });
    expect(stateOf(csv('data.20261123T101500Z.csv'))).toEqual({ id: old.id, created: old.created, synced: archiveSize });
    const current = stateOf(csv()) as FileState;
    expect(current.id).toMatch(ID);
    expect(current.id).not.toBe(old.id);
    expect(current.archivedAs).toBeUndefined();
    expect(current.synced).toBe(sizeOf(csv()));
  });

  it(
    'an archive completed after a crash vouches for all of the old file, even when an earlier synced update was lost',
    async () => {
      await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
      // Batch 2's rows are written and fsynced (acked), but its state could not be rewritten.
      const stateFails: WriterFs = {
        ...nodeFs,
        openSync: ((path: nodeFs.PathLike, flags?: nodeFs.OpenMode, mode?: nodeFs.Mode) => {
          if (String(path).endsWith('.state') && flags === 'r+') throw Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' });
          return nodeFs.openSync(path, flags ?? 'r', mode);
        }) as WriterFs['openSync'],
      };
      const second = await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] }, stateFails);
      expect(second).toMatchObject({ ok: true, stateError: expect.stringContaining('EIO') });
      const afterBatch2 = sizeOf(csv());
      // Batch 3 brings a new key; the process dies between the two renames.
      const crashBetweenRenames: WriterFs = {
        ...nodeFs,
        renameSync: (from: nodeFs.PathLike, to: nodeFs.PathLike) => {
          if (String(from).endsWith('.csv.new') || String(from).endsWith('Z.csv')) throw Object.assign(new Error('killed'), { code: 'EKILLED' });
          nodeFs.renameSync(from, to);
        },
      };
      expect(await write({ fileName: 'data.csv', rows: [row(['b'], ['3'])] }, crashBetweenRenames)).toMatchObject({ ok: false });
      const archivePath = csv('data.20261123T101500Z.csv');
      expect(sizeOf(archivePath)).toBe(afterBatch2); // batch 2's rows are in the archive, fsynced
      await write({ fileName: 'data.csv', rows: [row(['b'], ['3'])] });
      // Archives are never written again nor vouched for at start-up: the forwarder reads them only up to synced.
      expect((stateOf(archivePath) as FileState).synced).toBe(afterBatch2);
    },
  );
});

describe('ensureFileState', () => {
  it('gives a file without a state a new id, fsyncing a non-empty file first', () => {
    writeFileSync(csv(), 'received_at,a\n2026-11-23T10:15:00.000Z,1\n');
    let synced = 0;
    const state = ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => synced++);
    expect(synced).toBe(1);
    expect(state).toEqual({ id: state.id, created: at, synced: sizeOf(csv()) });
    expect(state.id).toMatch(ID);
    expect(stateOf(csv())).toEqual(state);

    let syncedEmpty = 0;
    const empty = ensureFileState(nodeFs, csv('empty.csv'), 0, at, () => syncedEmpty++);
    expect(syncedEmpty).toBe(0);
    expect(empty.synced).toBe(0);
  });

  it('returns the kept state unchanged when it fits the file', () => {
    writeFileSync(csv(), 'received_at,a\n2026-11-23T10:15:00.000Z,1\n');
    const kept = { id: '0123456789abcdef', created: 5, synced: 14 };
    writeFileStateDurably(nodeFs, csv(), kept);
    expect(ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => {})).toEqual(kept);
    expect(stateOf(csv())).toEqual(kept);
  });

  it('completes a move a crash cut short after the first rename, with no current file yet', () => {
    writeFileSync(csv(), 'received_at,a\n2026-11-23T10:15:00.000Z,1\n');
    const old = ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => {});
    markArchiving(nodeFs, csv(), old, 'data.20261123T101500Z.csv');
    expect(stateOf(csv())).toEqual({ ...old, archivedAs: 'data.20261123T101500Z.csv' });
    renameSync(csv(), csv('data.20261123T101500Z.csv'));

    const fresh = ensureFileState(nodeFs, csv(), 0, at + 1, () => {
      throw new Error('nothing to sync in an empty file');
    });
    expect(stateOf(csv('data.20261123T101500Z.csv'))).toEqual({ id: old.id, created: old.created, synced: old.synced });
    expect(fresh.id).toMatch(ID);
    expect(fresh.id).not.toBe(old.id);
    expect(fresh).toEqual({ id: fresh.id, created: at + 1, synced: 0 });
    expect(stateOf(csv())).toEqual(fresh);
  });

  it('completes a move after both renames: the widened file in place gets a fresh id and counts as synced', () => {
    writeFileSync(csv(), 'received_at,a\n2026-11-23T10:15:00.000Z,1\n');
    const old = ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => {});
    markArchiving(nodeFs, csv(), old, 'data.20261123T101500Z.csv');
    renameSync(csv(), csv('data.20261123T101500Z.csv'));
    writeFileSync(csv(), 'received_at,a,b\n2026-11-23T10:15:00.000Z,,2\n');

    let syncs = 0;
    const fresh = ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => syncs++);
    expect(syncs).toBe(1);
    expect(fresh.id).not.toBe(old.id);
    expect(fresh.synced).toBe(sizeOf(csv()));
    expect((stateOf(csv('data.20261123T101500Z.csv')) as FileState).id).toBe(old.id);
  });

  it('does not overwrite an archive state the writer already moved before the crash', () => {
    writeFileSync(csv(), 'received_at,a\n2026-11-23T10:15:00.000Z,1\n');
    const old = ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => {});
    markArchiving(nodeFs, csv(), old, 'data.20261123T101500Z.csv');
    renameSync(csv(), csv('data.20261123T101500Z.csv'));
    const moved = { id: old.id, created: 42, synced: old.synced };
    writeFileStateDurably(nodeFs, csv('data.20261123T101500Z.csv'), moved);

    const fresh = ensureFileState(nodeFs, csv(), 0, at, () => {});
    expect(stateOf(csv('data.20261123T101500Z.csv'))).toEqual(moved);
    expect(fresh.id).not.toBe(old.id);
  });

  it('clears a mark whose rename never happened, keeping the id and synced', () => {
    writeFileSync(csv(), 'received_at,a\n2026-11-23T10:15:00.000Z,1\n');
    const old = ensureFileState(nodeFs, csv(), sizeOf(csv()), at, () => {});
    markArchiving(nodeFs, csv(), old, 'data.20261123T101500Z.csv');

    const after = ensureFileState(nodeFs, csv(), sizeOf(csv()), at + 1000, () => {
      throw new Error('must not sync: the file keeps its state');
    });
    expect(after).toEqual({ id: old.id, created: old.created, synced: old.synced });
    expect(stateOf(csv())).toEqual(after);
    expect(readFileSync(statePathOf(csv()), 'utf8')).not.toContain('data.20261123T101500Z.csv');
    expect(existsSync(csv('data.20261123T101500Z.csv'))).toBe(false);
    expect(existsSync(statePathOf(csv('data.20261123T101500Z.csv')))).toBe(false);
  });

  it('gives a file shorter than its state vouches for (emptied or replaced by hand) a new id, so no offset is sent twice', () => {
    writeFileSync(csv(), 'received_at,a\n');
    writeFileStateDurably(nodeFs, csv(), { id: 'fedcba9876543210', created: 7, synced: 500 });
    let synced = false;
    const state = ensureFileState(nodeFs, csv(), 14, at, () => (synced = true));
    expect(state.id).toMatch(ID);
    expect(state.id).not.toBe('fedcba9876543210');
    expect(state).toMatchObject({ created: at, synced: 14 });
    expect(synced).toBe(true);
    expect(stateOf(csv())).toEqual(state);
  });

  it('gives 1000 new files 1000 different ids', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const state = ensureFileState(noSync, csv(`s${i}.csv`), 0, at, () => {});
      expect(state.id).toMatch(ID);
      ids.add(state.id);
    }
    expect(ids.size).toBe(1000);
    for (let i = 0; i < 1000; i++) ids.add(newFileId());
    expect(ids.size).toBe(2000);
  });

  it('gives the same path a new id each time its state is lost (a file made anew)', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      nodeFs.rmSync(statePathOf(csv()), { force: true });
      ids.add(ensureFileState(noSync, csv(), 0, at, () => {}).id);
    }
    expect(ids.size).toBe(200);
  });
});

describe('state text', () => {
  it('round-trips through encode and parse, with and without an archive mark', () => {
    const plain: FileState = { id: '00ff00ff00ff00ff', created: at, synced: 1234 };
    const marked: FileState = { ...plain, archivedAs: 'data-2026-11-23.20261123T101500Z-2.csv' };
    expect(encodeFileState(plain)).toBe(`v1 00ff00ff00ff00ff ${at} 0000000000001234\n`);
    expect(encodeFileState(marked)).toBe(`v1 00ff00ff00ff00ff ${at} 0000000000001234 data-2026-11-23.20261123T101500Z-2.csv\n`);
    expect(parseFileState(encodeFileState(plain))).toEqual(plain);
    expect(parseFileState(encodeFileState(marked))).toEqual(marked);
    const big: FileState = { id: 'abcdefabcdefabcd', created: 0, synced: 9_007_199_254_740_991 };
    expect(parseFileState(encodeFileState(big))).toEqual(big);
  });

  it('keeps the line length when synced grows, so recordSynced rewrites in place', () => {
    const a = encodeFileState({ id: '0123456789abcdef', created: at, synced: 0 });
    const b = encodeFileState({ id: '0123456789abcdef', created: at, synced: 123_456_789_012 });
    expect(a.length).toBe(b.length);
  });

  it.each([
    ['empty', ''],
    ['another version', `v2 0123456789abcdef ${at} 0000000000000001\n`],
    ['an upper-case id', `v1 0123456789ABCDEF ${at} 0000000000000001\n`],
    ['a 15-digit id', `v1 0123456789abcde ${at} 0000000000000001\n`],
    ['synced not 16 digits', `v1 0123456789abcdef ${at} 1\n`],
    ['no newline', `v1 0123456789abcdef ${at} 0000000000000001`],
    ['a second line', `v1 0123456789abcdef ${at} 0000000000000001\nv1 0123456789abcdef ${at} 0000000000000002\n`],
    ['a created time that is not a number', 'v1 0123456789abcdef x 0000000000000001\n'],
    ['an archive name with a slash', `v1 0123456789abcdef ${at} 0000000000000001 ../data.csv\n`],
    ['trailing space', `v1 0123456789abcdef ${at} 0000000000000001 \n`],
    ['garbage', '\u0000\u0000\u0000'],
  ])('parses %s as null', (_what, text) => {
    expect(parseFileState(text)).toBeNull();
  });

  it('reads null only for a missing state file; any other failure throws, so no file gets a second id (SPEC section 11)', () => {
    expect(readFileState(nodeFs, csv())).toBeNull();
    nodeFs.mkdirSync(stateDirOf(dir.path), { recursive: true });
    writeFileSync(statePathOf(csv()), 'not a state\n');
    expect(() => readFileState(nodeFs, csv())).toThrow(expect.objectContaining({ code: 'EBADSTATE', message: expect.stringMatching(/does not parse/) }));
    const tooManyFiles = {
      ...nodeFs,
      openSync: () => {
        throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
      },
    };
    expect(() => readFileState(tooManyFiles, csv())).toThrow(expect.objectContaining({ code: 'EMFILE' }));
  });

  it('names state files beside the CSV folder, and maps them back', () => {
    expect(statePathOf('/d/site/data.csv')).toBe('/d/site/.sensor-ingest/files/data.csv.state');
    expect(csvNameOfState('data.csv.state')).toBe('data.csv');
    expect(csvNameOfState('data.csv.state.tmp')).toBeNull();
    expect(csvNameOfState('notes.state')).toBeNull();
  });

  it('recordSynced rewrites the length in place, on the same inode', () => {
    writeFileStateDurably(nodeFs, csv(), { id: '0123456789abcdef', created: 3, synced: 10 });
    const inode = statSync(statePathOf(csv())).ino;
    const next = recordSynced(nodeFs, csv(), { id: '0123456789abcdef', created: 3, synced: 10 }, 99);
    expect(next).toEqual({ id: '0123456789abcdef', created: 3, synced: 99 });
    expect(readFileSync(statePathOf(csv()), 'utf8')).toBe('v1 0123456789abcdef 3 0000000000000099\n');
    expect(statSync(statePathOf(csv())).ino).toBe(inode);
  });
});
