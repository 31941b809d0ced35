import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ListedFile, RETENTION_WAIT_WARN_MS, createRetention } from '../../src/server/retention.js';
import { statePathOf } from '../../src/storage/file-state.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { type RetainedFile, planRetention } from '../../src/storage/retention.js';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);

const file = (name: string, daysOld: number, bytes: number, closed = true, held = false): RetainedFile => ({ path: name, bytes, newestMs: NOW - daysOld * DAY, closed, held });

describe('planRetention (SPEC section 12)', () => {
  it('removes closed files older than RETENTION_DAYS by their newest row, never a current file', () => {
    const files = [file('a', 10, 1), file('b', 4, 1), file('c', 2, 1), file('current', 30, 1, false)];
    expect(planRetention(files, { days: 3, maxBytes: undefined }, NOW).remove.map(({ file: f, reason }) => `${f.path} ${reason}`)).toEqual(['a age', 'b age']);
  });

  it('removes the oldest closed files while all stream files take more than RETENTION_MAX_BYTES', () => {
    const files = [file('new', 1, 300), file('old', 9, 300), file('mid', 5, 300), file('current', 0, 300, false)];
    expect(planRetention(files, { days: undefined, maxBytes: 700 }, NOW).remove.map(({ file: f }) => f.path)).toEqual(['old', 'mid']);
    // Both rules: age first, then size counts what is left.
    expect(planRetention(files, { days: 7, maxBytes: 700 }, NOW).remove.map(({ file: f, reason }) => `${f.path} ${reason}`)).toEqual(['old age', 'mid size']);
  });

  it('waits for a file whose rows are not safe elsewhere, and removes nothing younger in its place', () => {
    const files = [file('held', 9, 300, true, true), file('mid', 5, 300), file('current', 0, 300, false)];
    const bySize = planRetention(files, { days: undefined, maxBytes: 500 }, NOW);
    expect(bySize.remove).toEqual([]);
    expect(bySize.waiting.map((f) => f.path)).toEqual(['held']);
    const byAge = planRetention(files, { days: 3, maxBytes: undefined }, NOW);
    expect(byAge.remove.map(({ file: f }) => f.path)).toEqual(['mid']);
    expect(byAge.waiting.map((f) => f.path)).toEqual(['held']);
  });
});

describe('createRetention', () => {
  const dir = useTempDir();

  /** A CSV file whose newest row was received `daysOld` days before NOW, with a file state beside it. */
  function csv(name: string, daysOld: number): string {
    const path = join(dir.path, name);
    writeFileSync(path, `received_at,t\n${new Date(NOW - daysOld * DAY - 60_000).toISOString()},1\n${new Date(NOW - daysOld * DAY).toISOString()},2\n`);
    mkdirSync(join(dir.path, '.sensor-ingest', 'files'), { recursive: true });
    writeFileSync(statePathOf(path), '{}');
    return path;
  }

  it('removes by age under the lock, with the file state, one INFO each, and counts them; WARNs at most once an hour while a file waits', async () => {
    const listed: ListedFile[] = [
      { path: csv('data.20261120T000000Z.csv', 13), closed: true },
      { path: csv('data.20261125T000000Z.csv', 8), closed: true },
      { path: csv('data.20261201T000000Z.csv', 2), closed: true },
      { path: csv('data.csv', 20), closed: false },
    ];
    const bytes = statSync(listed[0]?.path ?? '').size;
    let now = NOW;
    let safe = (path: string) => !path.includes('20261125');
    const removed: string[] = [];
    const { logger, lines } = memoryLogger();
    const retention = createRetention({
      rules: { days: 7, maxBytes: undefined },
      logger,
      now: () => now,
      listFiles: () => Promise.resolve(listed.filter((f) => existsSync(f.path))),
      safe: (path) => safe(path),
      lock: lockForCommit,
      onRemoved: (reason, bytes) => removed.push(`${reason} ${bytes}`),
      watch: false,
    });
    await retention.run();
    expect(readdirSync(dir.path).filter((name) => name.endsWith('.csv')).sort()).toEqual(['data.20261125T000000Z.csv', 'data.20261201T000000Z.csv', 'data.csv']);
    expect(existsSync(statePathOf(listed[0]?.path ?? ''))).toBe(false);
    expect(lines.filter((l) => l.msg === 'retention removed file')).toEqual([
      expect.objectContaining({ level: 30, file: 'data.20261120T000000Z.csv', bytes, reason: 'age' }),
    ]);
    expect(removed).toEqual([`age ${bytes}`]);
    expect(lines.filter((l) => l.msg === 'retention waiting for forwarder')).toEqual([expect.objectContaining({ level: 40, files: 1, oldest: 'data.20261125T000000Z.csv' })]);

    now += RETENTION_WAIT_WARN_MS - 1;
    await retention.run();
    expect(lines.filter((l) => l.msg === 'retention waiting for forwarder')).toHaveLength(1);
    safe = () => true;
    await retention.run();
    expect(readdirSync(dir.path).filter((name) => name.endsWith('.csv')).sort()).toEqual(['data.20261201T000000Z.csv', 'data.csv']);
    expect(removed).toEqual([`age ${bytes}`, `age ${bytes}`]);
  });

  it('does nothing without RETENTION_DAYS or RETENTION_MAX_BYTES', async () => {
    const path = csv('data.20261120T000000Z.csv', 400);
    const retention = createRetention({
      rules: { days: undefined, maxBytes: undefined },
      logger: memoryLogger().logger,
      now: () => NOW,
      listFiles: () => Promise.resolve([{ path, closed: true }]),
      safe: () => true,
      lock: lockForCommit,
    });
    await retention.run();
    retention.close();
    expect(existsSync(path)).toBe(true);
  });
});
