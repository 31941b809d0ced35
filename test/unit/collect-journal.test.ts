import * as nodeFs from 'node:fs';
import { appendFileSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type CollectJournal, type WrittenRow, insertRange, journalPathOf, openCollectJournal } from '../../src/collector/journal.js';
import type { RowOrigin } from '../../src/nats/row-message.js';
import { useTempDir } from '../support/temp-dir.js';

const FILE_A = '00000000000000aa';
const FILE_B = '00000000000000bb';
const CENTRAL = 'c0c0c0c0c0c0c0c0';

const dir = useTempDir();
const journals: CollectJournal[] = [];
afterEach(() => {
  for (const journal of journals.splice(0)) journal.close();
});

/** node:fs without fsyncs, for tests of many appends that do not test durability. */
const noSync = { ...nodeFs, fsyncSync: () => {} } as typeof nodeFs;

function open(fs: typeof nodeFs = nodeFs): CollectJournal {
  const journal = openCollectJournal(dir.path, fs);
  journals.push(journal);
  return journal;
}

function reopen(journal: CollectJournal, fs: typeof nodeFs = nodeFs): CollectJournal {
  journal.close();
  journals.splice(journals.indexOf(journal), 1);
  return open(fs);
}

const origin = (offset: number, fileId = FILE_A, site = 'site-a'): RowOrigin => ({ site, fileId, offset });
const rowAt = (start: number, end: number, fileId = FILE_A, site = 'site-a'): WrittenRow => ({ origin: origin(start, fileId, site), end });
const lines = () => readFileSync(journalPathOf(dir.path), 'utf8').split('\n').filter((line) => line !== '');

describe('openCollectJournal', () => {
  it('starts empty, in DATA_DIR/.sensor-ingest/collected.journal', () => {
    const journal = open();
    expect(journal.has(origin(0))).toBe(false);
    expect(journal.endOf(CENTRAL)).toBeUndefined();
    expect(journal.size()).toEqual({ files: 0, ranges: 0 });
    expect(journalPathOf(dir.path)).toBe(`${dir.path}/.sensor-ingest/collected.journal`);
    expect(nodeFs.existsSync(journalPathOf(dir.path))).toBe(true);
  });

  it('has a row once appended, and the central file end', () => {
    const journal = open();
    journal.append(new Map([[CENTRAL, 120]]), [rowAt(100, 150)]);
    expect(journal.has(origin(100))).toBe(true);
    expect(journal.has(origin(149))).toBe(true);
    expect(journal.has(origin(150))).toBe(false);
    expect(journal.has(origin(99))).toBe(false);
    expect(journal.has(origin(100, FILE_B))).toBe(false);
    expect(journal.has(origin(100, FILE_A, 'site-b'))).toBe(false);
    expect(journal.endOf(CENTRAL)).toBe(120);
    journal.append(new Map([[CENTRAL, 180]]), []);
    expect(journal.endOf(CENTRAL)).toBe(180);
  });

  it('writes one JSON line a batch, back-to-back rows as one range', () => {
    const journal = open();
    journal.append(new Map([[CENTRAL, 300]]), [rowAt(10, 20), rowAt(20, 35), rowAt(0, 5, FILE_B), rowAt(35, 40), rowAt(50, 60)]);
    expect(lines()).toEqual([
      JSON.stringify({
        ends: { [CENTRAL]: 300 },
        rows: [
          ['site-a', FILE_A, 10, 40],
          ['site-a', FILE_B, 0, 5],
          ['site-a', FILE_A, 50, 60],
        ],
      }),
    ]);
    expect(journal.size()).toEqual({ files: 2, ranges: 3 });
  });

  it('keeps one range for 10,000 consecutive rows of one file, appended one by one', () => {
    const journal = open(noSync);
    let offset = 64;
    for (let i = 0; i < 10_000; i++) {
      const length = 30 + (i % 7);
      journal.append(new Map([[CENTRAL, 1000 + i]]), [rowAt(offset, offset + length)]);
      offset += length;
      expect(journal.size().ranges).toBe(1);
    }
    expect(journal.size()).toEqual({ files: 1, ranges: 1 });
    expect(journal.has(origin(64))).toBe(true);
    expect(journal.has(origin(offset - 1))).toBe(true);
    expect(journal.has(origin(offset))).toBe(false);
    expect(journal.has(origin(63))).toBe(false);
    // It compacted itself along the way; reopened, it is still one range.
    expect(lines().length).toBeLessThanOrEqual(2001);
    const again = reopen(journal, noSync);
    expect(again.size()).toEqual({ files: 1, ranges: 1 });
    expect(again.endOf(CENTRAL)).toBe(10_999);
    expect(again.has(origin(offset - 1))).toBe(true);
  });

  it('does not cover a gap between rows', () => {
    const journal = open();
    journal.append(new Map(), [rowAt(0, 10), rowAt(20, 30)]);
    expect(journal.size().ranges).toBe(2);
    for (const offset of [0, 9, 20, 29]) expect(journal.has(origin(offset)), `offset ${offset}`).toBe(true);
    for (const offset of [10, 15, 19, 30]) expect(journal.has(origin(offset)), `offset ${offset}`).toBe(false);
    journal.append(new Map(), [rowAt(10, 20)]);
    expect(journal.size().ranges).toBe(1);
    expect(journal.has(origin(10))).toBe(true);
    expect(journal.has(origin(19))).toBe(true);
  });

  it('keeps rows written out of order (a redelivery behind newer rows) exactly', () => {
    const journal = open();
    journal.append(new Map(), [rowAt(40, 50)]);
    journal.append(new Map(), [rowAt(0, 10)]);
    journal.append(new Map(), [rowAt(20, 30)]);
    expect(journal.size().ranges).toBe(3);
    expect([0, 10, 20, 30, 40, 50].map((offset) => journal.has(origin(offset)))).toEqual([true, false, true, false, true, false]);
    journal.append(new Map(), [rowAt(10, 20), rowAt(30, 40)]);
    expect(journal.size().ranges).toBe(1);
  });

  it('survives a reopen: rows, ranges and ends', () => {
    const journal = open();
    journal.append(new Map([[CENTRAL, 111]]), [rowAt(0, 10), rowAt(20, 30)]);
    journal.append(new Map([['d0d0d0d0d0d0d0d0', 222]]), [rowAt(5, 9, FILE_B, 'site-b')]);
    const again = reopen(journal);
    expect(again.size()).toEqual({ files: 2, ranges: 3 });
    expect(again.has(origin(0))).toBe(true);
    expect(again.has(origin(10))).toBe(false);
    expect(again.has(origin(25))).toBe(true);
    expect(again.has(origin(5, FILE_B, 'site-b'))).toBe(true);
    expect(again.endOf(CENTRAL)).toBe(111);
    expect(again.endOf('d0d0d0d0d0d0d0d0')).toBe(222);
    // Not compacted: a short journal stays as it was written.
    expect(lines()).toHaveLength(2);
  });

  it('ignores a cut last line on reopen, removes it, and appends whole lines after', () => {
    const journal = open();
    journal.append(new Map([[CENTRAL, 100]]), [rowAt(0, 10)]);
    journal.close();
    journals.splice(0);
    appendFileSync(journalPathOf(dir.path), '{"ends":{"c0c0c0c0c0c0c0c0":999},"rows":[["site-a","00000000000000aa",10,');
    const again = open();
    expect(again.has(origin(0))).toBe(true);
    expect(again.has(origin(10))).toBe(false);
    expect(again.endOf(CENTRAL)).toBe(100);
    expect(readFileSync(journalPathOf(dir.path), 'utf8').endsWith('\n')).toBe(true);
    again.append(new Map([[CENTRAL, 130]]), [rowAt(10, 20)]);
    const third = reopen(again);
    expect(third.has(origin(15))).toBe(true);
    expect(third.endOf(CENTRAL)).toBe(130);
    expect(nodeFs.existsSync(`${journalPathOf(dir.path)}.tmp`)).toBe(false);
  });

  it('compacts itself into one line past 2000 lines, keeping every range and every end, also across a reopen', () => {
    const journal = open(noSync);
    const files = ['1111111111111111', '2222222222222222', '3333333333333333'];
    const expected: Array<[string, number, number]> = [];
    for (let i = 0; i < 2001; i++) {
      const fileId = files[i % 3] as string;
      const start = i * 100;
      expected.push([fileId, start, start + 10 + (i % 5)]);
      journal.append(new Map([[`e${String(i % 50).padStart(15, '0')}`, i]]), [rowAt(start, start + 10 + (i % 5), fileId, `site-${i % 2}`)]);
    }
    // Compacted as it went: a collector that runs for months does not grow its journal for ever.
    expect(lines()).toHaveLength(1);
    const before = journal.size();
    const again = reopen(journal, noSync);
    expect(lines()).toHaveLength(1);
    expect(again.size()).toEqual(before);
    for (const [i, [fileId, start, end]] of expected.entries()) {
      const site = `site-${i % 2}`;
      expect(again.has(origin(start, fileId, site))).toBe(true);
      expect(again.has(origin(end - 1, fileId, site))).toBe(true);
      expect(again.has(origin(end, fileId, site))).toBe(false);
      expect(again.has(origin(start, fileId, site === 'site-0' ? 'site-1' : 'site-0'))).toBe(false);
    }
    for (let k = 0; k < 50; k++) {
      // The last value each end took.
      const last = 2000 - ((2000 - k) % 50);
      expect(again.endOf(`e${String(k).padStart(15, '0')}`)).toBe(last);
    }
  });

  it('does not compact at exactly 2000 lines', () => {
    const journal = open(noSync);
    for (let i = 0; i < 2000; i++) journal.append(new Map(), [rowAt(i * 10, i * 10 + 5)]);
    reopen(journal, noSync);
    expect(lines()).toHaveLength(2000);
  });

  it('fsyncs each append before it returns', () => {
    const synced: number[] = [];
    const counting = { ...nodeFs, fsyncSync: (fd: number) => synced.push(fd) } as typeof nodeFs;
    const journal = open(counting);
    journal.append(new Map(), [rowAt(0, 1)]);
    journal.append(new Map(), [rowAt(1, 2)]);
    expect(synced).toHaveLength(2);
  });
});

describe('insertRange', () => {
  type Range = [number, number];
  const after = (list: Range[], start: number, end: number): Range[] => {
    const copy = list.map((range) => [...range] as Range);
    insertRange(copy, start, end);
    return copy;
  };

  it.each<[string, Range[], Range, Range[]]>([
    ['into an empty list', [], [5, 10], [[5, 10]]],
    ['before all, apart', [[20, 30]], [0, 10], [[0, 10], [20, 30]]],
    ['after all, apart', [[0, 10]], [20, 30], [[0, 10], [20, 30]]],
    ['between two, apart', [[0, 10], [40, 50]], [20, 30], [[0, 10], [20, 30], [40, 50]]],
    ['touching the end of one', [[0, 10]], [10, 20], [[0, 20]]],
    ['touching the start of one', [[10, 20]], [0, 10], [[0, 20]]],
    ['bridging two that it touches', [[0, 10], [20, 30]], [10, 20], [[0, 30]]],
    ['overlapping the start of one', [[10, 20]], [5, 15], [[5, 20]]],
    ['overlapping the end of one', [[10, 20]], [15, 25], [[10, 25]]],
    ['inside one', [[0, 100]], [10, 20], [[0, 100]]],
    ['equal to one', [[0, 10], [20, 30]], [20, 30], [[0, 10], [20, 30]]],
    ['covering several', [[0, 5], [10, 15], [20, 25], [40, 45]], [3, 22], [[0, 25], [40, 45]]],
    ['covering all', [[10, 15], [20, 25]], [0, 100], [[0, 100]]],
    ['one short of touching', [[0, 10], [21, 30]], [11, 20], [[0, 10], [11, 20], [21, 30]]],
  ])('inserts %s', (_what, list, [start, end], expected) => {
    expect(after(list, start, end)).toEqual(expected);
  });

  it('keeps the list sorted and disjoint under random inserts, covering exactly what was inserted', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const list: Range[] = [];
    const covered = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const start = random(2000);
      const end = start + 1 + random(20);
      insertRange(list, start, end);
      for (let offset = start; offset < end; offset++) covered.add(offset);
    }
    for (let i = 1; i < list.length; i++) expect((list[i - 1] as Range)[1]).toBeLessThan((list[i] as Range)[0]);
    const fromList = new Set<number>();
    for (const [start, end] of list) for (let offset = start; offset < end; offset++) fromList.add(offset);
    expect(fromList).toEqual(covered);
  });
});
