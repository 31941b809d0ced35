import * as nodeFs from 'node:fs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repairCurrentFiles, repairCutRow } from '../../src/storage/repair.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { listFiles } from '../support/csv-files.js';
import { useTempDir } from '../support/temp-dir.js';

const now = Date.UTC(2026, 10, 23, 10, 15, 0);
const dir = useTempDir();

const put = (name: string, text: string) => writeFileSync(join(dir.path, name), text);
const text = (name: string) => readFileSync(join(dir.path, name), 'utf8');

describe('repairCutRow', () => {
  it('cuts the file back to its last complete row and keeps the stump', () => {
    put('data.csv', 'received_at,a\n2026-01-01T00:00:00.000Z,1\n2026-01-01T00:00:00.000Z,"half');
    expect(repairCutRow(nodeFs, dir.path, 'data.csv', now)).toEqual({
      fileName: 'data.csv',
      partialFile: 'data.csv.partial-20261123T101500Z',
      bytes: 30,
    });
    expect(text('data.csv')).toBe('received_at,a\n2026-01-01T00:00:00.000Z,1\n');
    expect(text('data.csv.partial-20261123T101500Z')).toBe('2026-01-01T00:00:00.000Z,"half');
  });

  it('does not take a quoted newline for a row end', () => {
    put('data.csv', 'received_at,a\nx,"line one\nline two\n');
    repairCutRow(nodeFs, dir.path, 'data.csv', now);
    expect(text('data.csv')).toBe('received_at,a\n');
    expect(text('data.csv.partial-20261123T101500Z')).toBe('x,"line one\nline two\n');
  });

  it('leaves a whole file alone, quoted newlines, doubled quotes and all', () => {
    const whole = 'received_at,a\nx,"one\ntwo ""q"""\ny,"a\n\nb"\n';
    put('data.csv', whole);
    expect(repairCutRow(nodeFs, dir.path, 'data.csv', now)).toBeNull();
    expect(text('data.csv')).toBe(whole);
    expect(listFiles(dir.path)).toEqual(['data.csv']);
  });

  it('empties a file cut inside its header, and names a second stump with -1', () => {
    put('data.csv.partial-20261123T101500Z', 'older');
    put('data.csv', 'received_at,te');
    repairCutRow(nodeFs, dir.path, 'data.csv', now);
    expect(text('data.csv')).toBe('');
    expect(text('data.csv.partial-20261123T101500Z-1')).toBe('received_at,te');
  });

  it('scans files larger than one read chunk', () => {
    const rows = Array.from({ length: 60_000 }, (_, i) => `t,"v${i}\n,x"`).join('\n');
    put('data.csv', `received_at,a\n${rows}\nt,"cut`);
    const result = repairCutRow(nodeFs, dir.path, 'data.csv', now);
    expect(result?.bytes).toBe(6);
    expect(text('data.csv').endsWith('x"\n')).toBe(true);
  });

  it('does nothing for a missing file', () => {
    expect(repairCutRow(nodeFs, dir.path, 'nope.csv', now)).toBeNull();
  });
});

describe('repairCurrentFiles', () => {
  it("repairs each stream's current files and leaves archives alone", async () => {
    put('data.csv', 'received_at,a\n1,"x');
    put('data.20261101T000000Z.csv', 'received_at,a\n1,"x');
    put('data2-2026-11-22.csv', 'received_at,a\n1,2');
    put('data2-2026-11-21.csv', 'received_at,a\n1,"x'); // an older day: not the current file
    put('other.csv', 'received_at,a\n1,"x');
    const none = await repairCurrentFiles({ dataDir: dir.path, streams: ['data', 'data2'], rotate: 'none', fs: nodeFs, lock: lockForCommit, now: () => now });
    expect(none.repairs.map((r) => r.fileName)).toEqual(['data.csv']);
    expect(none.boundaries).toEqual([{ path: join(dir.path, 'data.csv'), ino: expect.any(Number), end: 'received_at,a\n'.length }]);
    expect(text('data.20261101T000000Z.csv')).toBe('received_at,a\n1,"x');
    expect(text('other.csv')).toBe('received_at,a\n1,"x');

    const daily = await repairCurrentFiles({ dataDir: dir.path, streams: ['data', 'data2'], rotate: 'daily', fs: nodeFs, lock: lockForCommit, now: () => now });
    expect(daily.repairs.map((r) => r.fileName)).toEqual(['data2-2026-11-22.csv']);
    expect(text('data2-2026-11-22.csv')).toBe('received_at,a\n');
    expect(text('data2-2026-11-21.csv')).toBe('received_at,a\n1,"x');
  });
});
