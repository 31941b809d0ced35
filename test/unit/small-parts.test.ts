import { describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../src/writer/backoff.js';
import { archiveFileName, currentFileName, isCurrentFileOf, nameTimestamp, partialFileName } from '../../src/storage/file-names.js';
import { type QueueEntry, RowQueue } from '../../src/writer/row-queue.js';

describe('file names', () => {
  const at = Date.UTC(2026, 10, 23, 23, 59, 59, 999);
  it('names current files by stream, and by UTC day when rotating daily', () => {
    expect(currentFileName('data', at, 'none')).toBe('data.csv');
    expect(currentFileName('data', at, 'daily')).toBe('data-2026-11-23.csv');
    expect(currentFileName('data', at + 1, 'daily')).toBe('data-2026-11-24.csv');
  });
  it('names archives and stumps with a UTC timestamp', () => {
    expect(nameTimestamp(Date.UTC(2026, 10, 23, 10, 15, 0))).toBe('20261123T101500Z');
    expect(archiveFileName('data.csv', at, 0)).toBe('data.20261123T235959Z.csv');
    expect(archiveFileName('data-2026-11-23.csv', at, 2)).toBe('data-2026-11-23.20261123T235959Z-2.csv');
    expect(partialFileName('data.csv', at, 0)).toBe('data.csv.partial-20261123T235959Z');
    expect(partialFileName('data.csv', at, 1)).toBe('data.csv.partial-20261123T235959Z-1');
  });
  it('tells current files from archives', () => {
    expect(isCurrentFileOf('data', 'data.csv', 'none')).toBe(true);
    expect(isCurrentFileOf('data', 'data2.csv', 'none')).toBe(false);
    expect(isCurrentFileOf('data', 'data-2026-11-23.csv', 'daily')).toBe(true);
    expect(isCurrentFileOf('data', 'data-2026-11-23.20261123T101500Z.csv', 'daily')).toBe(false);
    expect(isCurrentFileOf('data', 'data2-2026-11-23.csv', 'daily')).toBe(false);
  });
});

describe('retryDelayMs', () => {
  const options = { baseSec: 0.05, maxSec: 5 };
  it('doubles from the base, with jitter in the upper half, capped at the max', () => {
    expect(retryDelayMs(1, options, () => 0)).toBe(25);
    expect(retryDelayMs(1, options, () => 0.999999)).toBeCloseTo(50, 3);
    expect(retryDelayMs(3, options, () => 0.5)).toBe(150);
    expect(retryDelayMs(20, options, () => 0.999999)).toBeCloseTo(5000, 1);
  });
});

describe('RowQueue', () => {
  const due = () => true;
  const entry = (fileName: string, rows: number, bytes = rows * 30): QueueEntry => ({
    fileName,
    stream: 'data',
    rows: Array.from({ length: rows }, () => ({ receivedAt: 0, columns: [], cells: [] })),
    bytes,
    settle: () => {},
  });

  it('bounds rows, counting those being written', () => {
    const queue = new RowQueue(5);
    queue.push(entry('a', 3));
    expect(queue.canTake(2)).toBe(true);
    expect(queue.canTake(3)).toBe(false);
    queue.take(100, Infinity, due);
    expect(queue.length).toBe(3);
    expect(queue.hasWaiting(due)).toBe(false);
  });

  it('bounds encoded bytes too (SPEC section 11), counting those being written until they leave', () => {
    const queue = new RowQueue(100, 1000);
    queue.push(entry('a', 1, 600));
    expect(queue.canTake(1, 400)).toBe(true);
    expect(queue.canTake(1, 401)).toBe(false);
    queue.take(100, Infinity, due);
    expect(queue.bytes).toBe(600);
    queue.complete(() => true);
    expect(queue.bytes).toBe(0);
    expect(queue.canTake(1, 1000)).toBe(true);
  });

  it('puts failed entries back in front of newer ones, in order', () => {
    const queue = new RowQueue(100);
    const [a1, b1, a2] = [entry('a', 1), entry('b', 1), entry('a', 2)];
    queue.push(a1);
    queue.push(b1);
    queue.push(a2);
    expect(queue.take(100, Infinity, due)).toEqual([a1, b1, a2]);
    const a3 = entry('a', 1);
    queue.push(a3);
    queue.complete((e) => e.fileName === 'b');
    expect(queue.length).toBe(4);
    expect(queue.take(100, Infinity, due)).toEqual([a1, a2, a3]);
  });

  it('skips files that are not due, keeping each file in order', () => {
    const queue = new RowQueue(100);
    const [a1, b1, a2, c1] = [entry('a', 1), entry('b', 1), entry('a', 1), entry('c', 1)];
    for (const e of [a1, b1, a2, c1]) queue.push(e);
    expect(queue.take(100, Infinity, (file) => file !== 'a')).toEqual([b1, c1]);
    expect(queue.hasWaiting((file) => file !== 'a')).toBe(false);
    expect([...queue.waitingFiles()]).toEqual(['a']);
    queue.complete(() => true);
    expect(queue.take(100, Infinity, due)).toEqual([a1, a2]);
  });

  it('takes at most maxFiles files', () => {
    const queue = new RowQueue(100);
    const [a1, b1, a2, c1] = [entry('a', 1), entry('b', 1), entry('a', 1), entry('c', 1)];
    for (const e of [a1, b1, a2, c1]) queue.push(e);
    expect(queue.take(100, 2, due)).toEqual([a1, b1, a2]);
  });

  it('takes about maxRows at a time but always at least one entry', () => {
    const queue = new RowQueue(100);
    queue.push(entry('a', 5));
    queue.push(entry('a', 5));
    queue.push(entry('a', 5));
    expect(queue.take(3, Infinity, due)).toHaveLength(1);
    expect(queue.take(10, Infinity, due)).toHaveLength(2);
  });
});
