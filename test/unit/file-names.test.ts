import { describe, expect, it } from 'vitest';
import { streamFileOf } from '../../src/storage/stream-files.js';
import { archiveFileName, currentFileName, partialFileName } from '../../src/storage/file-names.js';

const at = Date.UTC(2026, 10, 23, 10, 15, 0);

describe('streamFileOf', () => {
  const streams = new Set(['data', 'env-1', 'a_b']);

  it.each([
    ['data.csv', { stream: 'data', archive: false, compressed: false }],
    ['env-1.csv', { stream: 'env-1', archive: false, compressed: false }],
    ['a_b.csv', { stream: 'a_b', archive: false, compressed: false }],
    ['data.20261123T101500Z.csv', { stream: 'data', archive: true, compressed: false }],
    ['data.20261123T101500Z-1.csv', { stream: 'data', archive: true, compressed: false }],
    ['data.20261123T101500Z-12.csv', { stream: 'data', archive: true, compressed: false }],
    ['data-2026-11-23.csv', { stream: 'data', archive: false, compressed: false, day: '2026-11-23' }],
    ['data-2026-11-23.20261123T101500Z.csv', { stream: 'data', archive: true, compressed: false, day: '2026-11-23' }],
    ['data-2026-11-23.20261123T101500Z-2.csv', { stream: 'data', archive: true, compressed: false, day: '2026-11-23' }],
    ['env-1-2026-01-02.csv', { stream: 'env-1', archive: false, compressed: false, day: '2026-01-02' }],
    ['data.20261123T101500Z.csv.gz', { stream: 'data', archive: true, compressed: true }],
    ['data-2026-11-23.csv.gz', { stream: 'data', archive: false, compressed: true, day: '2026-11-23' }],
  ])('knows %s', (name, expected) => {
    expect(streamFileOf(name, streams)).toEqual(expected);
  });

  it.each([
    ['another stream', 'other.csv'],
    ['an archive of another stream', 'other.20261123T101500Z.csv'],
    ['a day file of another stream', 'other-2026-11-23.csv'],
    ['a partial piece', 'data.csv.partial-20261123T101500Z'],
    ['the widened file before its rename', 'data.csv.new'],
    ['a lock', 'data.csv.lock'],
    ['a state', 'data.csv.state'],
    ['a name without .csv', 'data'],
    ['a stream name with a suffix', 'data2.csv'],
    ['a prefix of a stream', 'dat.csv'],
    ['a timestamp without Z', 'data.20261123T101500.csv'],
    ['a short timestamp', 'data.2026112T101500Z.csv'],
    ['a bad day', 'data-2026-1-23.csv'],
    ['a day without its dash', 'data2026-11-23.csv'],
    ['upper-case .CSV', 'data.CSV'],
  ])('returns null for %s', (_what, name) => {
    expect(streamFileOf(name, streams)).toBeNull();
  });

  it('prefers a stream whose name looks like a day file of another', () => {
    expect(streamFileOf('data-2026-11-23.csv', new Set(['data', 'data-2026-11-23']))).toEqual({ stream: 'data-2026-11-23', archive: false, compressed: false });
  });

  it('reads back every name the writer makes', () => {
    const daily = currentFileName('data', at, 'daily');
    expect(streamFileOf(currentFileName('data', at, 'none'), streams)).toEqual({ stream: 'data', archive: false, compressed: false });
    expect(streamFileOf(daily, streams)).toEqual({ stream: 'data', archive: false, compressed: false, day: '2026-11-23' });
    for (const attempt of [0, 1, 9, 10]) {
      expect(streamFileOf(archiveFileName('data.csv', at, attempt), streams)).toEqual({ stream: 'data', archive: true, compressed: false });
      expect(streamFileOf(archiveFileName(daily, at, attempt), streams)).toEqual({ stream: 'data', archive: true, compressed: false, day: '2026-11-23' });
      expect(streamFileOf(partialFileName('data.csv', at, attempt), streams)).toBeNull();
    }
  });
});
