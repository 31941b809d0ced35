import * as nodeFs from 'node:fs';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileBatch, FileFailed, FileWritten } from '../../src/writer/task.js';
import { type WriteDeps, defaultWriteDeps, writeBatch, writeFileBatch } from '../../src/writer/worker/commit.js';
import { LOCK_OPTIONS } from '../../src/storage/lock.js';
import type { WriterFs } from '../../src/storage/fs.js';
import { listFiles, readCsv } from '../support/csv-files.js';
import { useTempDir } from '../support/temp-dir.js';
import lockfile from 'proper-lockfile';

const at = Date.UTC(2026, 10, 23, 10, 15, 0);
const row = (columns: string[], cells: string[], receivedAt = at) => ({ receivedAt, columns, cells });

const dir = useTempDir();

const deps = (fs: WriterFs = nodeFs, now = () => at): WriteDeps => ({ ...defaultWriteDeps, fs, now });

async function write(batch: FileBatch, writeDeps = deps()) {
  return writeFileBatch(dir.path, batch, writeDeps);
}

describe('writeFileBatch', () => {
  it('writes the header once, then appends rows', async () => {
    const first = await write({ fileName: 'data.csv', rows: [row(['t'], ['1'])] });
    const second = await write({ fileName: 'data.csv', rows: [row(['t'], ['2']), row(['t'], ['3'])] });
    expect(first).toMatchObject({ ok: true, rows: 1, created: true });
    expect(second).toMatchObject({ ok: true, rows: 2, created: false });
    expect(readFileSync(join(dir.path, 'data.csv'), 'utf8')).toBe(
      'received_at,t\n2026-11-23T10:15:00.000Z,1\n2026-11-23T10:15:00.000Z,2\n2026-11-23T10:15:00.000Z,3\n',
    );
  });

  it('reads the header of a file another process started, leaving missing keys empty', async () => {
    writeFileSync(join(dir.path, 'data.csv'), 'received_at,a,"b,c",\'=f\n2026-01-01T00:00:00.000Z,1,2,3\n');
    await write({ fileName: 'data.csv', rows: [row(['=f', 'a'], ['9', '8'])] });
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([
      ['received_at', 'a', 'b,c', "'=f"],
      ['2026-01-01T00:00:00.000Z', '1', '2', '3'],
      ['2026-11-23T10:15:00.000Z', '8', '', '9'],
    ]);
  });

  it('archives the file and widens the header when a new key arrives; the whole batch goes to the new file', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a', 'b'], ['1', '2'])] });
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['a'], ['3']), row(['c', 'a'], ['4', '5'])] })) as FileWritten;
    expect(outcome).toMatchObject({ ok: true, created: true, archivedAs: 'data.20261123T101500Z.csv', addedColumns: ['c'] });
    expect(readCsv(join(dir.path, 'data.20261123T101500Z.csv'))).toEqual([
      ['received_at', 'a', 'b'],
      ['2026-11-23T10:15:00.000Z', '1', '2'],
    ]);
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([
      ['received_at', 'a', 'b', 'c'],
      ['2026-11-23T10:15:00.000Z', '3', '', ''],
      ['2026-11-23T10:15:00.000Z', '5', '', '4'],
    ]);
  });

  it('adds -1, -2 to an archive name that is taken', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    await write({ fileName: 'data.csv', rows: [row(['b'], ['1'])] });
    await write({ fileName: 'data.csv', rows: [row(['c'], ['1'])] });
    const last = (await write({ fileName: 'data.csv', rows: [row(['d'], ['1'])] })) as FileWritten;
    expect(last.archivedAs).toBe('data.20261123T101500Z-2.csv');
    expect(listFiles(dir.path)).toEqual(['data.20261123T101500Z-1.csv', 'data.20261123T101500Z-2.csv', 'data.20261123T101500Z.csv', 'data.csv']);
    expect(readCsv(join(dir.path, 'data.csv'))[0]).toEqual(['received_at', 'a', 'b', 'c', 'd']);
  });

  it('writes each file of a batch, one failure not stopping the others', async () => {
    mkdirSync(join(dir.path, 'data2.csv')); // a directory where the file should be: EISDIR
    const result = await writeBatch(
      {
        seq: 1,
        dataDir: dir.path,
        files: [
          { fileName: 'data2.csv', rows: [row(['a'], ['1'])] },
          { fileName: 'data.csv', rows: [row(['a'], ['2'])] },
        ],
      },
      deps(),
    );
    expect(result.files[0]).toMatchObject({ ok: false, fileName: 'data2.csv', code: 'EISDIR' });
    expect(result.files[1]).toMatchObject({ ok: true, fileName: 'data.csv' });
  });

  it('fails with ELOCKED while another process holds the lock', async () => {
    const path = join(dir.path, 'data.csv');
    const release = await lockfile.lock(path, LOCK_OPTIONS);
    try {
      expect(await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] })).toMatchObject({ ok: false, code: 'ELOCKED' });
      expect(existsSync(path)).toBe(false);
    } finally {
      await release();
    }
    expect(await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] })).toMatchObject({ ok: true });
  });

  it('cuts a failed write back so no half row is left, and the retry writes whole rows', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    const before = readFileSync(join(dir.path, 'data.csv'), 'utf8');
    let calls = 0;
    const shortThenFail: WriterFs = {
      ...nodeFs,
      writeSync: ((fd: number, buffer: Buffer, offset: number, length: number) => {
        calls++;
        if (calls === 1) return nodeFs.writeSync(fd, buffer, offset, Math.min(length, 5)); // a short write
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }) as WriterFs['writeSync'],
    };
    const failed = (await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] }, deps(shortThenFail))) as FileFailed;
    expect(failed).toMatchObject({ ok: false, code: 'EIO' });
    expect(readFileSync(join(dir.path, 'data.csv'), 'utf8')).toBe(before);
    await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] });
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r[1])).toEqual(['a', '1', '2']);
  });

  it('loops over short writes until every byte is written', async () => {
    const oneByteAtATime: WriterFs = {
      ...nodeFs,
      writeSync: ((fd: number, buffer: Buffer, offset: number) => nodeFs.writeSync(fd, buffer, offset, 1)) as WriterFs['writeSync'],
    };
    await write({ fileName: 'data.csv', rows: [row(['a'], ['héllo, "x"'])] }, deps(oneByteAtATime));
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([['received_at', 'a'], ['2026-11-23T10:15:00.000Z', 'héllo, "x"']]);
  });

  it('fsyncs the file once per batch, and the directory when the file is new', async () => {
    const synced: string[] = [];
    const counting: WriterFs = {
      ...nodeFs,
      fsyncSync: (fd: number) => {
        synced.push(nodeFs.fstatSync(fd).isDirectory() ? 'dir' : 'file');
        nodeFs.fsyncSync(fd);
      },
    };
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1']), row(['a'], ['2'])] }, deps(counting));
    // A new file's state (its id) is made durable once, before the rows: its file and folder.
    expect(synced).toEqual(['file', 'dir', 'file', 'dir']);
    synced.length = 0;
    await write({ fileName: 'data.csv', rows: [row(['a'], ['3'])] }, deps(counting));
    expect(synced).toEqual(['file']);
  });

  it('cuts off a stump left by a writer that died since start-up before appending', async () => {
    writeFileSync(join(dir.path, 'data.csv'), 'received_at,a\n2026-01-01T00:00:00.000Z,1\n2026-01-01T00:00:00.000Z,"cut');
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] })) as FileWritten;
    expect(outcome.repaired).toEqual({ fileName: 'data.csv', partialFile: 'data.csv.partial-20261123T101500Z', bytes: 29 });
    expect(readFileSync(join(dir.path, 'data.csv.partial-20261123T101500Z'), 'utf8')).toBe('2026-01-01T00:00:00.000Z,"cut');
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([
      ['received_at', 'a'],
      ['2026-01-01T00:00:00.000Z', '1'],
      ['2026-11-23T10:15:00.000Z', '2'],
    ]);
  });

  it('writes daily files named for the UTC day', async () => {
    await write({ fileName: 'data-2026-11-23.csv', rows: [row(['a'], ['1'])] });
    expect(readCsv(join(dir.path, 'data-2026-11-23.csv'))).toHaveLength(2);
  });

  it('starts over when a file has no complete header line', async () => {
    writeFileSync(join(dir.path, 'data.csv'), 'received_at,"a\n');
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] })) as FileWritten;
    expect(outcome.ok).toBe(true);
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([['received_at', 'a'], ['2026-11-23T10:15:00.000Z', '1']]);
  });
});

describe('another process dying mid-write', () => {
  it('cuts a stump that ends just after a quoted newline, checking only what was added since the last write', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    // A peer appends one whole row, then dies inside a quoted cell, just after a newline in it.
    appendFileSync(join(dir.path, 'data.csv'), '2026-01-01T00:00:00.000Z,2\n2026-01-01T00:00:00.000Z,"c\n');
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['a'], ['3'])] })) as FileWritten;
    expect(outcome.repaired).toMatchObject({ partialFile: 'data.csv.partial-20261123T101500Z', bytes: 28 });
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r[1])).toEqual(['a', '1', '2', '3']);
  });

  it('scans a file it has not written before from the start', async () => {
    writeFileSync(join(dir.path, 'data.csv'), 'received_at,a\n2026-01-01T00:00:00.000Z,"x\n');
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['a'], ['3'])] })) as FileWritten;
    expect(outcome.repaired?.bytes).toBe(28);
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r[1])).toEqual(['a', '3']);
  });
});

describe('failures after the write', () => {
  /** The next file fsync fails with EIO; with `truncateFails`, so does every ftruncate. */
  const fsyncFailsOnce = ({ truncateFails = false } = {}): WriterFs => {
    let armed = true;
    const eio = () => Object.assign(new Error('EIO: injected'), { code: 'EIO' });
    return {
      ...nodeFs,
      fsyncSync: (fd: number) => {
        if (armed && !nodeFs.fstatSync(fd).isDirectory()) {
          armed = false;
          throw eio();
        }
        nodeFs.fsyncSync(fd);
      },
      ftruncateSync: ((fd: number, len?: number) => {
        if (truncateFails) throw eio();
        nodeFs.ftruncateSync(fd, len);
      }),
    };
  };

  it('cuts the rows back when the fsync fails, so the retry does not write them twice', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    const failed = await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] }, deps(fsyncFailsOnce()));
    expect(failed).toMatchObject({ ok: false, code: 'EIO' });
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r[1])).toEqual(['a', '1']);
    await write({ fileName: 'data.csv', rows: [row(['a'], ['2'])] });
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r[1])).toEqual(['a', '1', '2']);
  });

  it('when even the cut-back fails, says where the rows began, and the retry skips them', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    const failed = (await write({ fileName: 'data.csv', rows: [row(['a'], ['2']), row(['a'], ['3'])] }, deps(fsyncFailsOnce({ truncateFails: true })))) as FileFailed;
    expect(failed).toMatchObject({ ok: false, code: 'EIO', resume: { rowsStart: 'received_at,a\n2026-11-23T10:15:00.000Z,1\n'.length } });
    const retried = (await write({ fileName: 'data.csv', rows: [row(['a'], ['2']), row(['a'], ['3'])], resume: failed.resume })) as FileWritten;
    expect(retried).toMatchObject({ ok: true, rows: 2, resumedRows: 2 });
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r[1])).toEqual(['a', '1', '2', '3']);
  });

  it('resumes a dead attempt split over two retries, then writes new rows normally', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['0'])] });
    const failed = (await write({ fileName: 'data.csv', rows: ['1', '2', '3'].map((c) => row(['a'], [c])) }, deps(fsyncFailsOnce({ truncateFails: true })))) as FileFailed;
    const first = (await write({ fileName: 'data.csv', rows: [row(['a'], ['1']), row(['a'], ['2'])], resume: failed.resume })) as FileWritten;
    expect(first).toMatchObject({ resumedRows: 2, resumeNext: { rowsStart: expect.any(Number) } });
    const second = (await write({ fileName: 'data.csv', rows: [row(['a'], ['3']), row(['a'], ['4'])], resume: first.resumeNext })) as FileWritten;
    expect(second).toMatchObject({ resumedRows: 1 });
    expect(second.resumeNext).toBeUndefined();
    expect(readCsv(join(dir.path, 'data.csv')).slice(1).map((r) => r[1])).toEqual(['0', '1', '2', '3', '4']);
  });

  it('leaves rows already written in the old file when the retry brings a new key', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['0'])] });
    const failed = (await write({ fileName: 'data.csv', rows: [row(['a'], ['1']), row(['a'], ['2'])] }, deps(fsyncFailsOnce({ truncateFails: true })))) as FileFailed;
    expect(failed.resume).toBeDefined();
    const retried = (await write({ fileName: 'data.csv', rows: [row(['a'], ['1']), row(['a'], ['2']), row(['y'], ['3'])], resume: failed.resume })) as FileWritten;
    expect(retried).toMatchObject({ ok: true, rows: 3, resumedRows: 2, archivedAs: 'data.20261123T101500Z.csv' });
    expect(readCsv(join(dir.path, 'data.20261123T101500Z.csv')).slice(1).map((r) => r[1])).toEqual(['0', '1', '2']);
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([['received_at', 'a', 'y'], ['2026-11-23T10:15:00.000Z', '', '3']]);
  });

  it('keeps the old columns when the write of a widened file fails', async () => {
    await write({ fileName: 'data.csv', rows: [row(['a'], ['1'])] });
    let fail = true;
    const enospcOnce: WriterFs = {
      ...nodeFs,
      writeSync: ((fd: number, buffer: Buffer, offset: number, length: number) => {
        if (fail) {
          fail = false;
          throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
        }
        return nodeFs.writeSync(fd, buffer, offset, length);
      }) as WriterFs['writeSync'],
    };
    expect(await write({ fileName: 'data.csv', rows: [row(['b'], ['2'])] }, deps(enospcOnce))).toMatchObject({ ok: false, code: 'ENOSPC' });
    expect(listFiles(dir.path)).toEqual(['data.csv']); // nothing archived, no .new left over
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([['received_at', 'a'], ['2026-11-23T10:15:00.000Z', '1']]);
    await write({ fileName: 'data.csv', rows: [row(['b'], ['2'])] });
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([['received_at', 'a', 'b'], ['2026-11-23T10:15:00.000Z', '', '2']]);
  });

  it('archives a file whose header does not start with received_at (a Flask10X file), keeping its columns', async () => {
    writeFileSync(join(dir.path, 'data.csv'), 'timestamp,temp\n2020-01-01 00:00:00,20\n');
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['timestamp', 'temp'], ['sensor-clock', '21'])] })) as FileWritten;
    expect(outcome).toMatchObject({ ok: true, archivedAs: 'data.20261123T101500Z.csv' });
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([
      ['received_at', 'timestamp', 'temp'],
      ['2026-11-23T10:15:00.000Z', 'sensor-clock', '21'],
    ]);
    expect(readCsv(join(dir.path, 'data.20261123T101500Z.csv'))[0]).toEqual(['timestamp', 'temp']);
  });
});

describe('MAX_COLUMNS in a file (SPEC section 11)', () => {
  const cols = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  const wide = (prefix: string, count: number) => row(cols(prefix, count), cols('v', count));
  const writeMax = (batch: FileBatch, maxColumns: number) => writeFileBatch(dir.path, batch, deps(), 0, maxColumns);

  it('widens while the header stays within MAX_COLUMNS, then starts again with the columns of the request that would pass it', async () => {
    await writeMax({ fileName: 'data.csv', rows: [wide('a', 3)] }, 4);
    // a0..a2 + b0 = 4 columns: a widening.
    const widened = (await writeMax({ fileName: 'data.csv', rows: [row(['b0'], ['1'])] }, 4)) as FileWritten;
    expect(widened).toMatchObject({ archivedAs: 'data.20261123T101500Z.csv', addedColumns: ['b0'] });
    expect(widened.reset).toBeUndefined();
    expect(readCsv(join(dir.path, 'data.csv'))[0]).toEqual(['received_at', 'a0', 'a1', 'a2', 'b0']);
    // One more column would make 5: the file is archived and the new one holds only this request's columns.
    const reset = (await writeMax({ fileName: 'data.csv', rows: [row(['c0', 'a1'], ['x', 'y'])] }, 4)) as FileWritten;
    expect(reset).toMatchObject({ ok: true, rows: 1, reset: true, archivedAs: 'data.20261123T101500Z-1.csv' });
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([
      ['received_at', 'c0', 'a1'],
      ['2026-11-23T10:15:00.000Z', 'x', 'y'],
    ]);
    expect(readCsv(join(dir.path, 'data.20261123T101500Z-1.csv'))[0]).toEqual(['received_at', 'a0', 'a1', 'a2', 'b0']);
  });

  it('keeps each request whole in one file: in a group commit, the request that would pass MAX_COLUMNS waits for the next commit', async () => {
    await writeMax({ fileName: 'data.csv', rows: [wide('a', 3)] }, 4);
    const batch: FileBatch = { fileName: 'data.csv', rows: [row(['a0'], ['1']), wide('b', 3), row(['b0'], ['2'])], requests: [1, 1, 1] };
    const first = (await writeMax(batch, 4)) as FileWritten;
    // The first request fits the file as it is; the second would make 6 columns, so it and the third are deferred.
    expect(first).toMatchObject({ ok: true, rows: 1, deferredRows: 2, created: false });
    expect(readCsv(join(dir.path, 'data.csv')).slice(1).map((r) => r.slice(1))).toEqual([['v0', 'v1', 'v2'], ['1', '', '']]);
    const second = (await writeMax({ fileName: 'data.csv', rows: batch.rows.slice(1), requests: [1, 1] }, 4)) as FileWritten;
    expect(second).toMatchObject({ ok: true, rows: 2, reset: true });
    expect(second.deferredRows).toBeUndefined();
    expect(readCsv(join(dir.path, 'data.csv'))).toEqual([
      ['received_at', 'b0', 'b1', 'b2'],
      ['2026-11-23T10:15:00.000Z', 'v0', 'v1', 'v2'],
      ['2026-11-23T10:15:00.000Z', '2', '', ''],
    ]);
  });

  it('resets a file written wider than MAX_COLUMNS before the limit existed, so no row costs more than MAX_COLUMNS cells', async () => {
    await writeMax({ fileName: 'data.csv', rows: [wide('a', 50)] }, Number.POSITIVE_INFINITY);
    const outcome = (await writeMax({ fileName: 'data.csv', rows: [row(['a0'], ['1'])] }, 10)) as FileWritten;
    expect(outcome).toMatchObject({ reset: true, archivedAs: 'data.20261123T101500Z.csv' });
    expect(readFileSync(join(dir.path, 'data.csv'), 'utf8')).toBe('received_at,a0\n2026-11-23T10:15:00.000Z,1\n');
  });
});

describe('a first line that is no header of ours', () => {
  it('archives a file whose first line passes MAX_HEADER_BYTES (a file that is not CSV) without reading it whole, and writes the rows to a new file', async () => {
    const path = join(dir.path, 'data.csv');
    writeFileSync(path, 'x'.repeat(17 * 1024 * 1024));
    appendFileSync(path, '\n');
    const read: number[] = [];
    const fs: WriterFs = {
      ...nodeFs,
      readSync: ((fd: number, buffer: Buffer, offset: number, length: number, position: number) => {
        read.push(length);
        return nodeFs.readSync(fd, buffer, offset, length, position);
      }) as WriterFs['readSync'],
    };
    const outcome = (await write({ fileName: 'data.csv', rows: [row(['t'], ['1'])] }, deps(fs))) as FileWritten;
    expect(outcome).toMatchObject({ ok: true, archivedAs: 'data.20261123T101500Z.csv' });
    expect(Math.max(...read)).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(readFileSync(path, 'utf8')).toBe('received_at,t\n2026-11-23T10:15:00.000Z,1\n');
  });
});
