/**
 * COMPRESS_CLOSED=gzip (SPEC section 12): one closed file compressed
 * crash-safely, and every reader taking the `.gz` form as it takes the plain
 * one. A kill is a throw from the step hook: the file system is left exactly
 * as that step left it, and the next pass must finish the job.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createCompression } from '../../src/server/compression.js';
import { type CompressStep, compressClosedFile, newestRowMs } from '../../src/storage/compress.js';
import { compressedNewestMs, csvChunks, plainSizeOf } from '../../src/storage/compressed.js';
import { countRows, readHeader, readRecords, readTail, streamRecords } from '../../src/storage/csv.js';
import { exportCsv } from '../../src/storage/csv-export.js';
import { encodeFileState, readFileState, statePathOf } from '../../src/storage/file-state.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { isCompressible, listStoredFiles, listStreamFiles, matchStreamFile } from '../../src/storage/stream-files.js';
import * as nodeFs from 'node:fs';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const ARCHIVE = 'data.20261120T000000Z.csv';
const NEWEST = Date.UTC(2026, 10, 19, 23, 59, 58, 123);

/** A closed CSV file of `rows` rows (one with a quoted newline) and its state, as the writer leaves them. */
function archive(name = ARCHIVE, rows = 500, id = '00112233aabbccdd'): { path: string; text: string } {
  const lines = ['received_at,t,note'];
  for (let i = 0; i < rows; i++) {
    const at = new Date(NEWEST - (rows - 1 - i) * 1000).toISOString();
    lines.push(i === 7 ? `${at},${i},"two\nlines, ""quoted"""` : `${at},${i},n${i}`);
  }
  const text = `${lines.join('\n')}\n`;
  const path = join(dir.path, name);
  writeFileSync(path, text);
  mkdirSync(join(dir.path, '.sensor-ingest', 'files'), { recursive: true });
  writeFileSync(statePathOf(path), encodeFileState({ id, created: 1_700_000_000_000, synced: Buffer.byteLength(text) }));
  return { path, text };
}

async function exported(paths: string[]): Promise<string> {
  let out = '';
  for await (const text of exportCsv(paths, ['received_at', 't', 'note'], {})) out += text;
  return out;
}

const listed = async (): Promise<string[]> => (await listStreamFiles(dir.path, 'data')).map((file) => file.name);

describe('compressClosedFile', () => {
  it('replaces the file by a whole, fsynced .gz carrying its id, state and newest row time, and removes the plain file', async () => {
    const { path, text } = archive();
    const before = readFileState(nodeFs, path);
    const result = await compressClosedFile(path, { lock: lockForCommit });
    expect(result).toMatchObject({ outcome: 'compressed', plainBytes: text.length });
    const gz = `${path}.gz`;
    expect(gunzipSync(readFileSync(gz)).toString()).toBe(text);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(statePathOf(path))).toBe(false);
    expect(readFileState(nodeFs, gz)).toEqual(before);
    expect(await compressedNewestMs(gz)).toBe(Math.floor(NEWEST / 1000) * 1000);
    expect(await newestRowMs(gz, 0)).toBe(Math.floor(NEWEST / 1000) * 1000);
    expect(statSync(gz).size).toBeLessThan(text.length / 3);
    expect(readdirSync(dir.path).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect(await plainSizeOf(gz, statSync(gz).size)).toBe(text.length);
  });

  for (const stop of ['written', 'state', 'renamed', 'removed'] as const satisfies readonly CompressStep[]) {
    it(`killed after "${stop}": readers see the rows once, in one form, and the next pass finishes`, async () => {
      const { path, text } = archive();
      const killed = compressClosedFile(path, {
        lock: lockForCommit,
        afterStep: (step) => {
          if (step === stop) throw new Error(`killed after ${stop}`);
        },
      });
      await expect(killed).rejects.toThrow(`killed after ${stop}`);
      // The lock was released by the throw; a real kill leaves it to go stale, which lockWaitingForHolder waits out.
      const names = await listed();
      expect(names).toHaveLength(1);
      expect(await exported(names.map((name) => join(dir.path, name)))).toBe(text);
      const again = await compressClosedFile(path, { lock: lockForCommit });
      expect(['compressed', 'finished', 'gone']).toContain(again.outcome);
      expect(await listed()).toEqual([`${ARCHIVE}.gz`]);
      expect(gunzipSync(readFileSync(`${path}.gz`)).toString()).toBe(text);
      expect(existsSync(path)).toBe(false);
      expect(readFileState(nodeFs, `${path}.gz`)?.id).toBe('00112233aabbccdd');
    });
  }

  it('leaves a file alone while its state does not vouch for all of it, or has none', async () => {
    const { path, text } = archive();
    writeFileSync(statePathOf(path), encodeFileState({ id: '00112233aabbccdd', created: 1, synced: text.length - 10 }));
    expect(await compressClosedFile(path, { lock: lockForCommit })).toEqual({ outcome: 'skipped', why: 'not settled' });
    writeFileSync(statePathOf(path), encodeFileState({ id: '00112233aabbccdd', created: 1, synced: text.length, archivedAs: 'x.csv' }));
    expect(await compressClosedFile(path, { lock: lockForCommit })).toEqual({ outcome: 'skipped', why: 'not settled' });
    writeFileSync(path, text.slice(0, -3)); // a torn last row
    nodeFs.unlinkSync(statePathOf(path));
    expect(await compressClosedFile(path, { lock: lockForCommit })).toEqual({ outcome: 'skipped', why: 'not settled' });
    expect(existsSync(`${path}.gz`)).toBe(false);
  });

  it('leaves an archive alone while a current file\'s state still marks the rename to it (its id is on the way)', async () => {
    const { path } = archive();
    nodeFs.unlinkSync(statePathOf(path));
    const current = join(dir.path, 'data.csv');
    writeFileSync(current, 'received_at,t,note\n');
    writeFileSync(statePathOf(current), encodeFileState({ id: '00112233aabbccdd', created: 1, synced: 19, archivedAs: ARCHIVE }));
    expect(await compressClosedFile(path, { lock: lockForCommit })).toEqual({ outcome: 'skipped', why: 'not settled' });
    expect(existsSync(statePathOf(path))).toBe(false);
  });

  it('gives a whole closed file without a state (an older version\'s archive) an id, and compresses it', async () => {
    const { path, text } = archive();
    nodeFs.unlinkSync(statePathOf(path));
    expect(await compressClosedFile(path, { lock: lockForCommit })).toMatchObject({ outcome: 'compressed' });
    expect(gunzipSync(readFileSync(`${path}.gz`)).toString()).toBe(text);
    expect(readFileState(nodeFs, `${path}.gz`)).toMatchObject({ id: expect.stringMatching(/^[0-9a-f]{16}$/), synced: text.length });
  });

  it('keeps a day file that rows reached after its .gz was made plain beside it, both listed, the .gz first', async () => {
    const day = 'data-2026-11-20.csv';
    const first = archive(day, 10, '1111111111111111');
    await compressClosedFile(first.path, { lock: lockForCommit });
    const late = archive(day, 3, '2222222222222222');
    expect(await compressClosedFile(late.path, { lock: lockForCommit })).toEqual({ outcome: 'skipped', why: 'name taken' });
    expect(await listed()).toEqual([`${day}.gz`, day]);
    expect(readFileSync(late.path, 'utf8')).toBe(late.text);
  });

  it('finishes a compression cut short after its rename, but compresses again a plain file that rows reached since', async () => {
    const { path, text } = archive('data-2026-11-20.csv', 50);
    await expect(
      compressClosedFile(path, {
        lock: lockForCommit,
        afterStep: (step) => {
          if (step === 'renamed') throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    // Both forms, one id: readers take the .gz; the passes see both.
    expect(await listed()).toEqual(['data-2026-11-20.csv.gz']);
    expect((await listStoredFiles(dir.path, ['data'], NEWEST + 3 * 86_400_000)).map((file) => file.path)).toEqual([`${path}.gz`, path]);
    // A late row reaches the plain file (the writer appends and vouches for it): now the plain file holds more.
    const late = `${new Date(NEWEST + 1000).toISOString()},late,x\n`;
    nodeFs.appendFileSync(path, late);
    writeFileSync(statePathOf(path), encodeFileState({ id: '00112233aabbccdd', created: 1_700_000_000_000, synced: text.length + late.length }));
    expect(await listed()).toEqual(['data-2026-11-20.csv']);
    expect(await exported([join(dir.path, 'data-2026-11-20.csv')])).toBe(text + late);
    // The next pass compresses it again, late row and all.
    expect(await compressClosedFile(path, { lock: lockForCommit })).toMatchObject({ outcome: 'compressed' });
    expect(await listed()).toEqual(['data-2026-11-20.csv.gz']);
    expect(gunzipSync(readFileSync(`${path}.gz`)).toString()).toBe(text + late);
    expect(readFileState(nodeFs, `${path}.gz`)?.synced).toBe(text.length + late.length);
  });

  it('a shutdown abandons a compression under way: the plain file stays, no temporary file', async () => {
    const { path, text } = archive(ARCHIVE, 20_000);
    const abort = new AbortController();
    abort.abort();
    await expect(compressClosedFile(path, { lock: lockForCommit, signal: abort.signal })).rejects.toThrow();
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readdirSync(dir.path).filter((name) => name.includes('.gz'))).toEqual([]);
  });
});

describe('readers of a .gz file', () => {
  it('read it as the plain file: tail, header, row count, records by offset, download', async () => {
    const { path, text } = archive(ARCHIVE, 3000);
    const plainTail = await readTail(path, 4096);
    const plainRecords = readRecordsOf(path, text.length);
    const plainCount = await countRows(path);
    await compressClosedFile(path, { lock: lockForCommit });
    const gz = `${path}.gz`;
    expect(await readTail(gz, 4096)).toEqual({ ...plainTail, bytesRead: text.length });
    expect(await readHeader(gz)).toEqual(['received_at', 't', 'note']);
    expect(await countRows(gz)).toBe(plainCount);
    const streamed = [];
    for await (const record of streamRecords(gz, plainRecords[0]?.offset ?? 0, text.length)) streamed.push(record);
    expect(streamed.map(({ offset, fields }) => ({ offset, fields }))).toEqual(plainRecords);
    // From a cursor part-way, as the forwarder resumes.
    const from = plainRecords[1200]?.offset ?? 0;
    const resumed = [];
    for await (const record of streamRecords(gz, from, text.length)) resumed.push(record.offset);
    expect(resumed).toEqual(plainRecords.slice(1200).map((record) => record.offset));
    expect(await exported([gz])).toBe(text);
    // A listing made before the compression still reads: the plain name falls back to its .gz.
    expect(await exported([path])).toBe(text);
    expect((await readTail(path, 4096))?.rows).toEqual(plainTail?.rows);
  });

  it('refuse a torn .gz instead of reading it as a shorter file', async () => {
    const { path } = archive(ARCHIVE, 3000);
    await compressClosedFile(path, { lock: lockForCommit });
    const gz = `${path}.gz`;
    truncateSync(gz, Math.floor(statSync(gz).size / 2));
    await expect(countRows(gz)).rejects.toThrow(/unexpected end of file/);
    await expect(exported([gz])).rejects.toThrow(/unexpected end of file/);
  });

  it('list both forms of one name by pattern, and a compressed file as closed, never compressible again', () => {
    expect(matchStreamFile('data', 'data.20261120T000000Z.csv.gz')).toMatchObject({ compressed: true, archivedAt: '20261120T000000Z' });
    expect(matchStreamFile('data', 'data-2026-11-20.csv.gz')).toMatchObject({ compressed: true, day: '2026-11-20' });
    expect(matchStreamFile('data', 'data.csv.gz.tmp')).toBeNull();
    const now = Date.UTC(2026, 10, 22, 0, 30);
    const file = (name: string) => matchStreamFile('data', name) ?? expect.fail(name);
    // A past day's file waits until the day after it has ended too (late rows); an archive goes at once.
    expect(isCompressible(file('data-2026-11-21.csv'), now)).toBe(false);
    expect(isCompressible(file('data-2026-11-20.csv'), now)).toBe(true);
    expect(isCompressible(file('data.20261121T235959Z.csv'), now)).toBe(true);
    expect(isCompressible(file('data-2026-11-20.csv.gz'), now)).toBe(false);
    expect(isCompressible(file('data.csv'), now)).toBe(false);
  });
});

describe('createCompression', () => {
  it('compresses each closed file whose rows are safe, counts it, logs an INFO, and waits for the others', async () => {
    const a = archive('data.20261120T000000Z.csv', 50, 'aaaaaaaaaaaaaaaa');
    const b = archive('data.20261121T000000Z.csv', 50, 'bbbbbbbbbbbbbbbb');
    const current = archive('data.csv', 5, 'cccccccccccccccc');
    const logger = memoryLogger();
    let compressed = 0;
    const compression = createCompression({
      enabled: true,
      logger: logger.logger,
      listFiles: () => listStoredFiles(dir.path, ['data'], Date.now()),
      safe: (path) => !path.includes('20261121'),
      lock: lockForCommit,
      onCompressed: () => compressed++,
      watch: false,
    });
    await compression.run();
    expect(await listed()).toEqual(['data.20261120T000000Z.csv.gz', 'data.20261121T000000Z.csv', 'data.csv']);
    expect(compressed).toBe(1);
    expect(logger.lines.filter((line) => line.msg === 'compressed file')).toEqual([
      expect.objectContaining({ level: 30, file: 'data.20261120T000000Z.csv', bytes: a.text.length, compressed_bytes: statSync(`${a.path}.gz`).size }),
    ]);
    expect(readFileSync(b.path, 'utf8')).toBe(b.text);
    expect(readFileSync(current.path, 'utf8')).toBe(current.text);
    await compression.close();
  });

  it("clears a killed compression's leftovers once its file has gone, and nothing while it is there", async () => {
    const kept = archive('data.20261121T000000Z.csv', 5, 'bbbbbbbbbbbbbbbb');
    writeFileSync(`${kept.path}.gz.tmp`, gzipSync('half'));
    const gonePath = join(dir.path, 'data.20261120T000000Z.csv');
    writeFileSync(`${gonePath}.gz.tmp`, gzipSync('half'));
    writeFileSync(statePathOf(`${gonePath}.gz`), encodeFileState({ id: 'aaaaaaaaaaaaaaaa', created: 1, synced: 10 }));
    // A compressed file whose plain form went but whose plain state stayed (a kill between the two removals).
    const done = archive('data.20261119T000000Z.csv', 5, 'cccccccccccccccc');
    await compressClosedFile(done.path, { lock: lockForCommit });
    writeFileSync(statePathOf(done.path), encodeFileState({ id: 'cccccccccccccccc', created: 1_700_000_000_000, synced: done.text.length }));
    const compression = createCompression({
      enabled: true,
      logger: memoryLogger().logger,
      listFiles: () => listStoredFiles(dir.path, ['data'], Date.now()),
      safe: () => false,
      lock: lockForCommit,
      watch: false,
    });
    await compression.run();
    expect(existsSync(`${gonePath}.gz.tmp`)).toBe(false);
    expect(existsSync(statePathOf(`${gonePath}.gz`))).toBe(false);
    expect(existsSync(`${kept.path}.gz.tmp`)).toBe(true);
    expect(existsSync(statePathOf(done.path))).toBe(false);
    expect(readFileState(nodeFs, `${done.path}.gz`)?.id).toBe('cccccccccccccccc');
    await compression.close();
  });
});

function readRecordsOf(path: string, size: number): Array<{ offset: number; fields: string[] }> {
  const fd = nodeFs.openSync(path, 'r');
  try {
    const out: Array<{ offset: number; fields: string[] }> = [];
    const headerEnd = readFileSync(path).indexOf(0x0a) + 1;
    for (let from = headerEnd; from < size; ) {
      const { records, end } = readRecords(nodeFs, fd, from, size, 512);
      if (records.length === 0) break;
      out.push(...records);
      from = end;
    }
    return out;
  } finally {
    nodeFs.closeSync(fd);
  }
}

// Keep the chunk reader honest on its own too: a plain file is read as it is.
it('csvChunks reads a plain file unchanged', async () => {
  const { path, text } = archive();
  const chunks: Buffer[] = [];
  for await (const chunk of csvChunks(path, 1024)) chunks.push(chunk);
  expect(Buffer.concat(chunks).toString()).toBe(text);
});
