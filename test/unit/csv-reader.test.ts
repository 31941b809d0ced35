import * as nodeFs from 'node:fs';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_HEADER_BYTES, encodeLine, readHeaderRecord, readRecords, readTail, scanRows } from '../../src/storage/csv.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const opened: number[] = [];
afterEach(() => {
  for (const fd of opened.splice(0)) closeSync(fd);
});

/** Writes `text` to a file and opens it for reading. */
function fileOf(text: string | Buffer): { fd: number; size: number; bytes: Buffer } {
  const path = join(dir.path, `f${opened.length}.csv`);
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r');
  opened.push(fd);
  return { fd, size: bytes.length, bytes };
}

/** Byte offsets where each of the encoded records starts, and the end. */
function offsetsOf(lines: string[]): { starts: number[]; end: number } {
  const starts: number[] = [];
  let at = 0;
  for (const line of lines) {
    starts.push(at);
    at += Buffer.byteLength(line);
  }
  return { starts, end: at };
}

const ROWS: string[][] = [
  ['received_at', 'name', 'note'],
  ['2026-11-23T10:15:00.000Z', 'Zürich', 'plain'],
  ['2026-11-23T10:15:00.001Z', '日本🌸', 'two\nlines, "quoted"'],
  ['2026-11-23T10:15:00.002Z', '', 'ÿ€\r\n'],
  ['2026-11-23T10:15:00.003Z', 'ascii', ''],
  ['2026-11-23T10:15:00.004Z', '🌸🌸🌸', '"'],
];
const LINES = ROWS.map(encodeLine);

describe('readRecords', () => {
  it('returns byte offsets, not character offsets, with multi-byte cells and quoted newlines, and decodes UTF-8', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts, end } = offsetsOf(LINES);
    const result = readRecords(nodeFs, fd, 0, size, 100);
    expect(result.records.map((record) => record.offset)).toEqual(starts);
    expect(result.records.map((record) => record.fields)).toEqual(ROWS);
    expect(result.end).toBe(end);
    expect(end).toBe(size);
    // The character count would differ: this test would catch offsets counted in UTF-16 units.
    expect(LINES.join('').length).not.toBe(size);
  });

  it('starts at a record boundary other than 0, with absolute offsets', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts } = offsetsOf(LINES);
    const result = readRecords(nodeFs, fd, starts[2] as number, size, 100);
    expect(result.records.map((record) => record.offset)).toEqual(starts.slice(2));
    expect(result.records.map((record) => record.fields)).toEqual(ROWS.slice(2));
  });

  it('never returns a record that extends past limit, whatever the limit', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts } = offsetsOf(LINES);
    const ends = [...starts.slice(1), size];
    for (let limit = 0; limit <= size; limit++) {
      const result = readRecords(nodeFs, fd, 0, limit, 100);
      const whole = ends.filter((end) => end <= limit).length;
      expect(result.records, `limit ${limit}`).toHaveLength(whole);
      expect(result.end, `limit ${limit}`).toBe(whole === 0 ? 0 : ends[whole - 1]);
      for (const [i, record] of result.records.entries()) expect(record.fields).toEqual(ROWS[i]);
    }
  });

  it('returns at most maxRecords, and end just past the last one returned', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts } = offsetsOf(LINES);
    const two = readRecords(nodeFs, fd, 0, size, 2);
    expect(two.records.map((record) => record.offset)).toEqual(starts.slice(0, 2));
    expect(two.end).toBe(starts[2]);
    const next = readRecords(nodeFs, fd, two.end, size, 2);
    expect(next.records.map((record) => record.fields)).toEqual(ROWS.slice(2, 4));
    expect(next.end).toBe(starts[4]);
  });

  it('returns nothing at or past the limit', () => {
    const { fd, size } = fileOf(LINES.join(''));
    expect(readRecords(nodeFs, fd, size, size, 10)).toEqual({ records: [], end: size });
    expect(readRecords(nodeFs, fd, 5, 3, 10)).toEqual({ records: [], end: 5 });
  });

  it('returns a record longer than the first 64 KiB read', () => {
    const long = `${'é'.repeat(100_000)},"a\n${'x'.repeat(50_000)}"`; // 250 KB in UTF-8, with a quoted newline
    const lines = [encodeLine(['received_at', 'v']), encodeLine(['2026-11-23T10:15:00.000Z', long]), encodeLine(['2026-11-23T10:15:00.001Z', 'short'])];
    const { fd, size } = fileOf(lines.join(''));
    const { starts } = offsetsOf(lines);
    const result = readRecords(nodeFs, fd, starts[1] as number, size, 10);
    expect(result.records).toHaveLength(2);
    expect(result.records[0]).toEqual({ offset: starts[1], fields: ['2026-11-23T10:15:00.000Z', long] });
    expect(result.records[1]).toEqual({ offset: starts[2], fields: ['2026-11-23T10:15:00.001Z', 'short'] });
    expect(result.end).toBe(size);
  });

  it('does not return a long record the limit cuts', () => {
    const lines = [encodeLine(['received_at', 'v']), encodeLine(['2026-11-23T10:15:00.000Z', 'y'.repeat(200_000)])];
    const { fd, size } = fileOf(lines.join(''));
    const { starts } = offsetsOf(lines);
    expect(readRecords(nodeFs, fd, starts[1] as number, size - 1, 10)).toEqual({ records: [], end: starts[1] });
    expect(readRecords(nodeFs, fd, starts[1] as number, size, 10).records).toHaveLength(1);
  });

  it('returns the whole records before a cut last record', () => {
    const text = `${LINES.slice(0, 3).join('')}2026-11-23T10:15:00.009Z,"cut`;
    const { fd, size } = fileOf(text);
    const { starts } = offsetsOf(LINES);
    const result = readRecords(nodeFs, fd, 0, size, 100);
    expect(result.records).toHaveLength(3);
    expect(result.end).toBe(starts[3]);
  });
});

describe('readHeaderRecord', () => {
  it('reads the first line and where it ends, or null when it is not whole', () => {
    const { fd, size } = fileOf(LINES.join(''));
    expect(readHeaderRecord(nodeFs, fd, size)).toMatchObject({ fields: ROWS[0], end: Buffer.byteLength(LINES[0] as string) });
    const cut = fileOf('received_at,ä');
    expect(readHeaderRecord(nodeFs, cut.fd, cut.size)).toBeNull();
    expect(readHeaderRecord(nodeFs, fd, Buffer.byteLength(LINES[0] as string) - 1)).toBeNull();
  });
});

describe('one header reader for every reader of a file', () => {
  it('ends a header at its first line end, even when a foreign first line opens a quote it never closes', async () => {
    const { fd, size } = fileOf('"id,name\n1,a\n2,b\n');
    expect(readHeaderRecord(nodeFs, fd, size)).toMatchObject({ fields: [], end: 9 });
    // The async reader (/streams, the dashboard) agrees: no columns, and no rows swallowed into a header.
    expect(await readTail(join(dir.path, 'f0.csv'))).toMatchObject({ header: [] });
  });

  it('reads through short reads (NFS, FUSE) instead of taking a header for missing', () => {
    const header = ['received_at', ...Array.from({ length: 500 }, (_, i) => `column_${i}`)];
    const { fd, size } = fileOf(encodeLine(header) + encodeLine(header.map(() => '1')));
    const stingy = {
      readSync: ((fd: number, buffer: Buffer, offset: number, length: number, position: number) =>
        nodeFs.readSync(fd, buffer, offset, Math.min(length, 100), position)) as typeof nodeFs.readSync,
    };
    expect(readHeaderRecord(stingy, fd, size)?.fields).toEqual(header);
  });

  it('says a file of exactly MAX_HEADER_BYTES without a line end has no header yet, and one past it is not ours', async () => {
    fileOf(Buffer.alloc(MAX_HEADER_BYTES, 0x61));
    expect(await readTail(join(dir.path, 'f0.csv'))).toBeNull();
    fileOf(Buffer.alloc(MAX_HEADER_BYTES + 1, 0x61));
    await expect(readTail(join(dir.path, 'f1.csv'))).rejects.toThrow(/no header line in its first 16777216 bytes/);
  });
});

describe('scanRows', () => {
  it('counts whole records only, with quoted newlines, up to limit', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts } = offsetsOf(LINES);
    const ends = [...starts.slice(1), size];
    expect(scanRows(nodeFs, fd, 0, size, 1 << 30)).toEqual({ count: LINES.length, end: size });
    for (let limit = 0; limit <= size; limit++) {
      const whole = ends.filter((end) => end <= limit).length;
      expect(scanRows(nodeFs, fd, 0, limit, 1 << 30), `limit ${limit}`).toEqual({ count: whole, end: whole === 0 ? 0 : ends[whole - 1] });
    }
  });

  it('resumes from its end when maxBytes cuts a pass, even inside a quoted field', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts } = offsetsOf(LINES);
    const ends = [...starts.slice(1), size];
    const longest = Math.max(...LINES.map((line) => Buffer.byteLength(line)));
    // A cut inside row 2's quoted newline: the newline must not count.
    const insideQuotes = (starts[2] as number) + Buffer.byteLength(LINES[2] as string) - 4;
    const cut = scanRows(nodeFs, fd, 0, size, insideQuotes);
    expect(cut.count).toBeGreaterThanOrEqual(2);
    expect([...starts.slice(1), size]).toContain(cut.end);
    for (let maxBytes = longest; maxBytes <= size; maxBytes++) {
      let from = 0;
      let total = 0;
      const seen: number[] = [];
      while (from < size) {
        const pass = scanRows(nodeFs, fd, from, size, maxBytes);
        expect(pass.count, `maxBytes ${maxBytes} from ${from}`).toBeGreaterThan(0);
        total += pass.count;
        seen.push(pass.end);
        from = pass.end;
      }
      expect(total, `maxBytes ${maxBytes}`).toBe(LINES.length);
      expect(ends, `maxBytes ${maxBytes}`).toEqual(expect.arrayContaining(seen));
    }
  });

  it('still moves on when the next record is longer than maxBytes (a huge row never stalls the count)', () => {
    const { fd, size } = fileOf(LINES.join(''));
    const { starts } = offsetsOf(LINES);
    const pass = scanRows(nodeFs, fd, starts[2] as number, size, 5);
    expect(pass.count).toBeGreaterThanOrEqual(1);
    expect([...starts.slice(3), size]).toContain(pass.end);
  });

  it('counts across its 1 MiB read chunks, with quotes and newlines straddling them', () => {
    const lines: string[] = [encodeLine(['received_at', 'v', 'w'])];
    for (let i = 0, bytes = 0; bytes < 2_500_000; i++) {
      const line = encodeLine([`2026-11-23T10:15:00.${String(i % 1000).padStart(3, '0')}Z`, `a"${'b'.repeat(i % 97)}\n,ü`, 'x'.repeat(i % 13)]);
      lines.push(line);
      bytes += Buffer.byteLength(line);
    }
    const { fd, size } = fileOf(lines.join(''));
    expect(scanRows(nodeFs, fd, 0, size, size)).toEqual({ count: lines.length, end: size });
    // readRecords reads about 64 KiB a call; called on from its end, it finds every record once, at its offset.
    const { starts } = offsetsOf(lines);
    const found: number[] = [];
    for (let from = 0; from < size; ) {
      const { records, end } = readRecords(nodeFs, fd, from, size, lines.length);
      expect(records.length).toBeGreaterThan(0);
      found.push(...records.map((record) => record.offset));
      from = end;
    }
    expect(found).toEqual(starts);
  });
});
