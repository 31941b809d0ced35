/**
 * Daily rotation files a row by the UTC day it was received, not by the
 * wall clock when the writer gets to it: rows received just before midnight
 * and written just after land in the earlier day's file.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Reading } from '../../src/storage/reading.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';
import { listFiles, readCsv } from '../support/csv-files.js';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';
import { heldRunner, testConfig } from '../support/writer.js';

const dir = useTempDir();
let writer: Writer | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await writer?.close();
});

const reading = (seq: number): Reading => ({ columns: ['seq'], cells: [String(seq)] });

describe('clock jump across midnight UTC', () => {
  it('writes each row into the file of the day it was received', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-11-23T23:59:59.950Z'));
    const runner = heldRunner();
    writer = createWriter({ config: testConfig(dir.path, { CSV_ROTATE: 'daily' }), runner, logger: memoryLogger().logger });
    const before = [writer.enqueue('data', [reading(1)], Date.now()), writer.enqueue('data', [reading(2)], Date.now())];
    // The writer is held up past midnight; a row arrives after it.
    vi.setSystemTime(new Date('2026-11-24T00:00:00.020Z'));
    const after = writer.enqueue('data', [reading(3)], Date.now());
    // And the clock jumps a day ahead (NTP correcting a Pi without an RTC) before anything is written.
    vi.setSystemTime(new Date('2026-11-25T08:00:00.000Z'));
    runner.release();
    await Promise.all([...before, after]);

    expect(listFiles(dir.path)).toEqual(['data-2026-11-23.csv', 'data-2026-11-24.csv']);
    expect(readCsv(join(dir.path, 'data-2026-11-23.csv'))).toEqual([
      ['received_at', 'seq'],
      ['2026-11-23T23:59:59.950Z', '1'],
      ['2026-11-23T23:59:59.950Z', '2'],
    ]);
    expect(readCsv(join(dir.path, 'data-2026-11-24.csv'))).toEqual([['received_at', 'seq'], ['2026-11-24T00:00:00.020Z', '3']]);
    console.log('clock jump: rows acknowledged 3, rows found 3, duplicates 0, torn rows 0');
  });
});
