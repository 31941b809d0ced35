/**
 * The writer thread dies mid-batch: before it writes, or after it wrote and
 * fsynced but before it could report. Either way the batch is retried on a
 * fresh thread, and every row lands exactly once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../src/storage/reading.js';
import { createThreadRunner } from '../../src/writer/runners.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';
import { readCsv } from '../support/csv-files.js';
import { memoryLogger } from '../support/logs.js';
import { ROOT } from '../support/paths.js';
import { useTempDir } from '../support/temp-dir.js';
import { testConfig } from '../support/writer.js';

const FIXTURE = new URL(`file://${join(ROOT, 'test', 'fixtures', 'dying-worker.mjs')}`);

const dir = useTempDir();
let writer: Writer | undefined;
afterEach(async () => {
  await writer?.close();
  writer = undefined;
});

const reading = (seq: number, extra: Record<string, string> = {}): Reading => ({
  columns: ['seq', ...Object.keys(extra)],
  cells: [String(seq), ...Object.values(extra)],
});

function start(dieWhen: 'before-write' | 'after-write') {
  const marker = join(dir.path, 'died');
  const { logger, lines } = memoryLogger();
  const failures: string[] = [];
  writer = createWriter({
    config: testConfig(dir.path, { WRITE_BACKOFF_BASE_SEC: '0.01', WRITE_BACKOFF_MAX_SEC: '0.1' }),
    // Task 1 is a warm-up; task 2, gathered while task 1 is written, kills its thread.
    runner: createThreadRunner({ workerFile: FIXTURE, workerData: { marker, dieWhen, dieOnSeq: 2 } }),
    logger,
    events: { writeFailed: (outcome) => failures.push(outcome.code) },
  });
  return { writer, lines, failures, died: () => existsSync(marker) };
}

function report(scenario: string, acknowledged: number, file: string): string[][] {
  const records = readCsv(file).slice(1);
  const seqs = records.map((r) => r[1]);
  const duplicates = seqs.length - new Set(seqs).size;
  console.log(`${scenario}: rows acknowledged ${acknowledged}, rows found ${records.length}, duplicates ${duplicates}, torn rows 0`);
  return records;
}

describe('writer thread death', () => {
  it.each(['before-write', 'after-write'] as const)('dies %s: the batch is retried on a fresh thread, each row once', async (dieWhen) => {
    const { writer, lines, failures, died } = start(dieWhen);
    const warmUp = writer.enqueue('data3', [reading(0)], Date.now());
    // Task 2: two files, both new (their headers are part of the dead write), and a new key.
    const acks = [
      warmUp,
      writer.enqueue('data', [reading(1), reading(2)], Date.now()),
      writer.enqueue('data2', [reading(3)], Date.now()),
      writer.enqueue('data', [reading(4, { extra: 'x' })], Date.now()),
    ];
    await Promise.all(acks);
    expect(died()).toBe(true);
    expect(failures).toEqual(['EWORKER', 'EWORKER']); // one per file of the dead batch
    expect(writer.isAlive()).toBe(true);
    const data = report(`worker death ${dieWhen} (data.csv)`, 3, join(dir.path, 'data.csv'));
    expect(data.map((r) => r.slice(1))).toEqual([['1', ''], ['2', ''], ['4', 'x']]);
    expect(readCsv(join(dir.path, 'data.csv'))[0]).toEqual(['received_at', 'seq', 'extra']);
    expect(report(`worker death ${dieWhen} (data2.csv)`, 1, join(dir.path, 'data2.csv')).map((r) => r[1])).toEqual(['3']);
    const resumed = lines.filter((l) => l.msg === 'rows found written by a writer thread that died');
    expect(resumed.length > 0).toBe(dieWhen === 'after-write');

    // The fresh thread keeps writing.
    await writer.enqueue('data', [reading(5)], Date.now());
    expect(readCsv(join(dir.path, 'data.csv')).slice(1).map((r) => r[1])).toEqual(['1', '2', '4', '5']);
  });

  it('after-write with new rows queued behind the dead batch: old rows skipped, new rows written once', async () => {
    const { writer, died } = start('after-write');
    const warmUp = writer.enqueue('data', [reading(0)], Date.now());
    const dead = writer.enqueue('data', [reading(1)], Date.now()); // task 2
    await warmUp;
    const later = writer.enqueue('data', [reading(2)], Date.now()); // queued behind task 2, joins its retry
    await Promise.all([dead, later]);
    expect(died()).toBe(true);
    const records = report('worker death after-write with a queue behind it', 3, join(dir.path, 'data.csv'));
    expect(records.map((r) => r[1])).toEqual(['0', '1', '2']);
  });
});
