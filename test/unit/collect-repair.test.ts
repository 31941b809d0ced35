import * as nodeFs from 'node:fs';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CollectJournal, openCollectJournal } from '../../src/collector/journal.js';
import { cutUnjournaledRows } from '../../src/collector/repair.js';
import type { FileWritten } from '../../src/writer/task.js';
import { type FileState, markArchiving, readFileState, statePathOf, writeFileStateDurably } from '../../src/storage/file-state.js';
import { defaultWriteDeps, writeFileBatch } from '../../src/writer/worker/commit.js';
import { type LockFile } from '../../src/storage/lock.js';
import { useTempDir } from '../support/temp-dir.js';

const at = Date.UTC(2026, 10, 23, 10, 15, 0);
const row = (columns: string[], cells: string[]) => ({ receivedAt: at, columns, cells });
const HEADER_A = 'received_at,a\n';

const dir = useTempDir();
let journal: CollectJournal;
let events: string[];
beforeEach(() => {
  mkdirSync(join(dir.path, 'site-a'));
  journal = openCollectJournal(dir.path);
  events = [];
});
afterEach(() => {
  journal.close();
});

const path = (name: string) => join(dir.path, name);
const sizeOf = (name: string) => statSync(path(name)).size;
const stateOf = (name: string) => readFileState(nodeFs, path(name));
const text = (name: string) => readFileSync(path(name), 'utf8');

/** A lock that records what it locked and released, in order. */
const recordingLock: LockFile = (locked) => {
  events.push(`lock ${locked.slice(dir.path.length + 1)}`);
  return Promise.resolve(() => {
    events.push(`release ${locked.slice(dir.path.length + 1)}`);
    return Promise.resolve();
  });
};

const write = async (fileName: string, rows: ReturnType<typeof row>[]) =>
  (await writeFileBatch(dir.path, { fileName, rows }, { ...defaultWriteDeps, now: () => at })) as FileWritten;

/**
 * One journaled row, then one written but never journaled, then an archive-and-widen
 * cut short after the mark and the first rename (data.csv is now the archive).
 */
async function archiveMoveWithUnjournaledRow(): Promise<{ first: FileWritten; old: FileState }> {
  const first = await write('site-a/data.csv', [row(['a'], ['1'])]);
  journal.append(new Map([[first.fileId as string, first.end as number]]), []);
  await write('site-a/data.csv', [row(['a'], ['2'])]); // written, never journaled
  const old = stateOf('site-a/data.csv') as FileState;
  markArchiving(nodeFs, path('site-a/data.csv'), old, 'data.20261123T101500Z.csv');
  renameSync(path('site-a/data.csv'), path('site-a/data.20261123T101500Z.csv'));
  return { first, old };
}

const repair = () => cutUnjournaledRows({ dataDir: dir.path, journal, fs: nodeFs, lock: recordingLock, now: () => at + 60_000 });

describe('cutUnjournaledRows', () => {
  it('cuts a file back to its journaled end and lowers its synced length, under its lock', async () => {
    const first = await write('site-a/data.csv', [row(['a'], ['1']), row(['a'], ['2'])]);
    journal.append(new Map([[first.fileId as string, first.end as number]]), []);
    const journaled = text('site-a/data.csv');
    await write('site-a/data.csv', [row(['a'], ['3'])]);
    const before = sizeOf('site-a/data.csv');
    expect((stateOf('site-a/data.csv') as FileState).synced).toBe(before);

    expect(await repair()).toEqual([{ file: 'site-a/data.csv', bytes: before - (first.end as number) }]);
    expect(text('site-a/data.csv')).toBe(journaled);
    expect(stateOf('site-a/data.csv')).toEqual({ id: first.fileId, created: at, synced: first.end });
    expect(events).toEqual(['lock site-a/data.csv', 'release site-a/data.csv']);
  });

  it('leaves a file that ends at its journaled end alone', async () => {
    const first = await write('site-a/data.csv', [row(['a'], ['1'])]);
    journal.append(new Map([[first.fileId as string, first.end as number]]), []);
    const state = stateOf('site-a/data.csv');
    expect(await repair()).toEqual([]);
    expect(sizeOf('site-a/data.csv')).toBe(first.end);
    expect(stateOf('site-a/data.csv')).toEqual(state);
  });

  it('cuts a file with a state but no journal entry to its header', async () => {
    const written = await write('site-a/data.csv', [row(['a'], ['1']), row(['a'], ['2'])]);
    expect(await repair()).toEqual([{ file: 'site-a/data.csv', bytes: (written.end as number) - HEADER_A.length }]);
    expect(text('site-a/data.csv')).toBe(HEADER_A);
    expect(stateOf('site-a/data.csv')).toEqual({ id: written.fileId, created: at, synced: HEADER_A.length });
  });

  it('leaves a file without a state alone', async () => {
    const content = `${HEADER_A}2026-11-23T10:15:00.000Z,1\n2026-11-23T10:15:00.000Z,"cut`;
    writeFileSync(path('site-a/other.csv'), content);
    expect(await repair()).toEqual([]);
    expect(text('site-a/other.csv')).toBe(content);
    expect(stateOf('site-a/other.csv')).toBeNull();
  });

  it('completes a pending archive move first: the archive keeps the old id, the file in place gets a new one and is cut to its header', async () => {
    const first = await write('site-a/data.csv', [row(['a'], ['1'])]);
    journal.append(new Map([[first.fileId as string, first.end as number]]), []);
    const old = stateOf('site-a/data.csv') as FileState;
    const archived = text('site-a/data.csv');
    // A crash in an archive-and-widen: marked, both renames done, the new file's state never written.
    markArchiving(nodeFs, path('site-a/data.csv'), old, 'data.20261123T101500Z.csv');
    renameSync(path('site-a/data.csv'), path('site-a/data.20261123T101500Z.csv'));
    writeFileSync(path('site-a/data.csv'), 'received_at,a,b\n2026-11-23T10:15:00.000Z,,2\n');

    expect(await repair()).toEqual([{ file: 'site-a/data.csv', bytes: '2026-11-23T10:15:00.000Z,,2\n'.length }]);
    expect(stateOf('site-a/data.20261123T101500Z.csv')).toEqual({ id: old.id, created: old.created, synced: old.synced });
    expect(text('site-a/data.20261123T101500Z.csv')).toBe(archived);
    const current = stateOf('site-a/data.csv') as FileState;
    expect(current.id).not.toBe(old.id);
    expect(current.id).toMatch(/^[0-9a-f]{16}$/);
    expect(current.archivedAs).toBeUndefined();
    expect(current.synced).toBe('received_at,a,b\n'.length);
    expect(text('site-a/data.csv')).toBe('received_at,a,b\n');
  });

  // The collector's rows of one fetch can go out in two group commits: the first alone
  // (the writer was idle), the rest bringing a new key. A crash before the journal
  // append leaves the first row unjournaled in what became the archive.
  it('cuts unjournaled rows out of the archive of a move it completes (the archive sorts first and, stateless, was skipped)', async () => {
    const { first, old } = await archiveMoveWithUnjournaledRow();
    writeFileSync(path('site-a/data.csv'), 'received_at,a,b\n2026-11-23T10:15:00.000Z,,3\n');

    await repair();
    expect((stateOf('site-a/data.20261123T101500Z.csv') as FileState).id).toBe(old.id);
    // Row '2' is redelivered and written again: it must not stay in the archive too.
    expect(sizeOf('site-a/data.20261123T101500Z.csv')).toBe(first.end);
  });

  it('cuts unjournaled rows out of an archive whose move was cut short before the current file came back', async () => {
    const { first } = await archiveMoveWithUnjournaledRow();
    // The crash came between the renames: data.csv.new never took data.csv's place.

    await repair();
    expect(sizeOf('site-a/data.20261123T101500Z.csv')).toBe(first.end);
  });

  it('clears a mark whose rename never happened, keeping the id, then cuts to the journaled end', async () => {
    const first = await write('site-a/data.csv', [row(['a'], ['1'])]);
    journal.append(new Map([[first.fileId as string, first.end as number]]), []);
    await write('site-a/data.csv', [row(['a'], ['2'])]);
    markArchiving(nodeFs, path('site-a/data.csv'), stateOf('site-a/data.csv') as FileState, 'data.20261123T101500Z.csv');
    const before = sizeOf('site-a/data.csv');

    expect(await repair()).toEqual([{ file: 'site-a/data.csv', bytes: before - (first.end as number) }]);
    expect(sizeOf('site-a/data.csv')).toBe(first.end);
    expect(stateOf('site-a/data.csv')).toEqual({ id: first.fileId, created: at, synced: first.end });
  });

  it('looks at each site folder and its CSV files only, each under its lock', async () => {
    mkdirSync(path('site-b'));
    mkdirSync(path('Not-A-Site'));
    writeFileSync(path('notes'), 'a file where a site could be\n');
    const a = await write('site-a/data.csv', [row(['a'], ['1'])]);
    const b = await write('site-b/data.csv', [row(['a'], ['1'])]);
    journal.append(new Map([[a.fileId as string, a.end as number], [b.fileId as string, b.end as number]]), []);
    const foreign = await write('Not-A-Site/data.csv', [row(['a'], ['1'])]);
    writeFileSync(path('site-a/data.csv.new'), 'received_at,a\n');
    writeFileStateDurably(nodeFs, path('site-a/data.csv.new'), { id: 'aaaaaaaaaaaaaaaa', created: 1, synced: 0 });

    expect(await repair()).toEqual([]);
    expect(sizeOf('Not-A-Site/data.csv')).toBe(foreign.end);
    expect(text('site-a/data.csv.new')).toBe('received_at,a\n');
    expect(events).toEqual(['lock site-a/data.csv', 'release site-a/data.csv', 'lock site-b/data.csv', 'release site-b/data.csv']);
  });

  it('cuts every file of a site to its own journaled end', async () => {
    const data = await write('site-a/data.csv', [row(['a'], ['1'])]);
    const other = await write('site-a/other.csv', [row(['a'], ['1'])]);
    journal.append(new Map([[data.fileId as string, data.end as number], [other.fileId as string, other.end as number]]), []);
    await write('site-a/data.csv', [row(['a'], ['2'])]);
    await write('site-a/other.csv', [row(['a'], ['22']), row(['a'], ['33'])]);
    const grown = { data: sizeOf('site-a/data.csv'), other: sizeOf('site-a/other.csv') };

    expect(await repair()).toEqual([
      { file: 'site-a/data.csv', bytes: grown.data - (data.end as number) },
      { file: 'site-a/other.csv', bytes: grown.other - (other.end as number) },
    ]);
    expect(sizeOf('site-a/data.csv')).toBe(data.end);
    expect(sizeOf('site-a/other.csv')).toBe(other.end);
    expect(nodeFs.existsSync(statePathOf(path('site-a/other.csv')))).toBe(true);
  });
});
