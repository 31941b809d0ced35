import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../src/storage/reading.js';
import type { BatchTask } from '../../src/writer/task.js';
import { type BatchRunner, createInlineRunner } from '../../src/writer/runners.js';
import { defaultWriteDeps } from '../../src/writer/worker/commit.js';
import type { WriterFs } from '../../src/storage/fs.js';
import { type Writer, createWriter, encodedBytes } from '../../src/writer/writer.js';
import { QueueFullError, TooLargeForQueueError, WriterClosedError } from '../../src/shared/errors.js';
import { toRequestError } from '../../src/server/errors.js';
import { readCsv } from '../support/csv-files.js';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { heldRunner, testConfig } from '../support/writer.js';

const dir = useTempDir();
let writer: Writer | undefined;
afterEach(async () => {
  await writer?.close();
  writer = undefined;
});

const reading = (seq: number): Reading => ({ columns: ['seq'], cells: [String(seq)] });
const seqs = () => readCsv(join(dir.path, 'data.csv')).slice(1).map((r) => Number(r[1]));

/** A file system whose writes fail with `code` while `failing` is set. */
function flakyFs(): { fs: WriterFs; failing: { code: string | null } } {
  const failing: { code: string | null } = { code: null };
  const fs: WriterFs = {
    ...nodeFs,
    writeSync: ((...args: Parameters<typeof nodeFs.writeSync>) => {
      if (failing.code !== null) throw Object.assign(new Error(`${failing.code}: injected`), { code: failing.code });
      return (nodeFs.writeSync as (...a: unknown[]) => number)(...args);
    }) as WriterFs['writeSync'],
  };
  return { fs, failing };
}

/** An inline runner that notes every task and holds the first until released, so rows gather behind it. */
function firstTaskHeld(): { tasks: BatchTask[]; runner: BatchRunner; release: () => void } {
  const tasks: BatchTask[] = [];
  const inline = createInlineRunner();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const runner: BatchRunner = {
    ...inline,
    run: async (task) => {
      tasks.push(task);
      if (tasks.length === 1) await gate;
      return inline.run(task);
    },
  };
  return { tasks, runner, release };
}

function make(env: Record<string, string>, runner: BatchRunner) {
  const { logger, lines } = memoryLogger();
  const failures: string[] = [];
  writer = createWriter({
    config: testConfig(dir.path, { WRITE_BACKOFF_BASE_SEC: '0.001', WRITE_BACKOFF_MAX_SEC: '0.02', ...env }),
    runner,
    logger,
    events: { writeFailed: (outcome) => failures.push(outcome.code) },
  });
  return { writer, lines, failures };
}

describe('createWriter', () => {
  it('resolves each enqueue once its rows are fsynced, in acceptance order', async () => {
    const { writer } = make({}, createInlineRunner());
    const acks = Array.from({ length: 50 }, (_, i) => writer.enqueue('data', [reading(i)], Date.now()));
    await Promise.all(acks);
    expect(seqs()).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(writer.length).toBe(0);
  });

  it('gathers rows that arrive during a write into the next group commit', async () => {
    const { tasks, runner, release } = firstTaskHeld();
    const { writer } = make({}, runner);
    const first = writer.enqueue('data', [reading(0)], Date.now());
    const rest = [1, 2, 3].map((i) => writer.enqueue('data', [reading(i)], Date.now()));
    rest.push(writer.enqueue('data2', [reading(9)], Date.now()));
    release();
    await Promise.all([first, ...rest]);
    expect(tasks.map((task) => task.files.map((f) => [f.fileName, f.rows.length]))).toEqual([
      [['data.csv', 1]],
      [['data.csv', 3], ['data2.csv', 1]],
    ]);
  });

  it('refuses rows that do not fit with a QueueFullError naming the queue (a 503 at the routes), all or none', () => {
    const runner = heldRunner(); // the first batch never finishes until released
    const { writer } = make({ WRITE_QUEUE_MAXSIZE: '3' }, runner);
    void writer.enqueue('data', [reading(1), reading(2)], Date.now());
    const refusal = thrownBy(() => writer.enqueue('data', [reading(3), reading(4)], Date.now()));
    expect(refusal).toBeInstanceOf(QueueFullError);
    expect(refusal).toMatchObject({ code: 'QUEUE_FULL', message: 'the write queue is full (2 of 3 rows); retry later' });
    expect(refusal).not.toHaveProperty('statusCode');
    expect(toRequestError(refusal)).toMatchObject({ statusCode: 503, code: 'QUEUE_FULL', headers: { 'Retry-After': expect.stringMatching(/^\d+$/) } });
    expect(writer.length).toBe(2);
    void writer.enqueue('data', [reading(3)], Date.now());
    expect(writer.length).toBe(3);
    runner.release();
  });

  it('retries a failed write with backoff, stalls after WRITE_RETRIES, keeps the rows, and drains them in order once the fault clears', async () => {
    const { fs, failing } = flakyFs();
    const { writer, lines, failures } = make({ WRITE_RETRIES: '2' }, createInlineRunner({ ...defaultWriteDeps, fs }));
    failing.code = 'EIO';
    const acks = [1, 2, 3].map((i) => writer.enqueue('data', [reading(i)], Date.now()));
    await waitFor(() => writer.stalled, 'the writer to stall');
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(failures.every((code) => code === 'EIO')).toBe(true);
    expect(lines.filter((l) => l.msg === 'write failed' && l.level === 50 && l.code === 'EIO').length).toBe(failures.length);
    expect(lines.some((l) => l.msg === 'writer stalled' && l.level === 40)).toBe(true);
    expect(writer.length).toBe(3);
    expect(writer.retryAfterSec()).toBe(1);
    const more = writer.enqueue('data', [reading(4)], Date.now());
    failing.code = null;
    await Promise.all([...acks, more]);
    expect(seqs()).toEqual([1, 2, 3, 4]);
    expect(writer.stalled).toBe(false);
    expect(lines.some((l) => l.msg === 'writer recovered')).toBe(true);
  });

  it('keeps writing other files while one file fails', async () => {
    const inline = createInlineRunner();
    let blockData = true;
    const runner: BatchRunner = {
      ...inline,
      run: async (task) => {
        const held = (f: { fileName: string }) => blockData && f.fileName === 'data.csv';
        const blocked = task.files.filter(held).map((f) => ({ fileName: f.fileName, ok: false as const, code: 'ELOCKED', message: 'held' }));
        const result = await inline.run({ ...task, files: task.files.filter((f) => !held(f)) });
        return { files: [...result.files, ...blocked] };
      },
    };
    const { writer } = make({}, runner);
    const blocked = writer.enqueue('data', [reading(1)], Date.now());
    await writer.enqueue('data2', [reading(2)], Date.now());
    expect(readCsv(join(dir.path, 'data2.csv'))).toHaveLength(2);
    blockData = false;
    await blocked;
    expect(seqs()).toEqual([1]);
  });

  it("does not make other files wait for a failing file's backoff", async () => {
    const inline = createInlineRunner();
    const runner: BatchRunner = {
      ...inline,
      run: async (task) => {
        const result = await inline.run({ ...task, files: task.files.filter((f) => f.fileName !== 'data.csv') });
        const held = task.files.filter((f) => f.fileName === 'data.csv');
        return { files: [...result.files, ...held.map((f) => ({ fileName: f.fileName, ok: false as const, code: 'ELOCKED', message: 'held' }))] };
      },
    };
    // A failing file waits 50 to 100 s before its retry; the test would time out if data2 waited too.
    const { writer, failures } = make({ WRITE_BACKOFF_BASE_SEC: '100', WRITE_BACKOFF_MAX_SEC: '200' }, runner);
    void writer.enqueue('data', [reading(1)], Date.now());
    await waitFor(() => failures.length === 1, 'the first failure');
    for (let i = 2; i < 5; i++) await writer.enqueue('data2', [reading(i)], Date.now());
    expect(readCsv(join(dir.path, 'data2.csv')).slice(1).map((r) => r[1])).toEqual(['2', '3', '4']);
    expect(failures).toEqual(['ELOCKED']);
    expect(writer.length).toBe(1);
  });

  it('treats a thread failure as every file failing, and retries', async () => {
    const inline = createInlineRunner();
    let crashes = 1;
    const runner: BatchRunner = {
      ...inline,
      run: (task) => (crashes-- > 0 ? Promise.reject(new Error('worker died')) : inline.run(task)),
    };
    const { writer, failures } = make({}, runner);
    await writer.enqueue('data', [reading(1)], Date.now());
    expect(failures).toEqual(['EWORKER']);
    expect(seqs()).toEqual([1]);
  });

  it('waits COMMIT_INTERVAL_MS between commits, but a drain does not', async () => {
    const starts: number[] = [];
    const inline = createInlineRunner();
    const runner: BatchRunner = { ...inline, run: (task) => (starts.push(Date.now()), inline.run(task)) };
    const { writer } = make({ COMMIT_INTERVAL_MS: '200' }, runner);
    await writer.enqueue('data', [reading(1)], Date.now());
    const second = writer.enqueue('data', [reading(2)], Date.now());
    await second;
    expect((starts[1] as number) - (starts[0] as number)).toBeGreaterThanOrEqual(190);

    void writer.enqueue('data', [reading(3)], Date.now());
    expect(await writer.drain(5_000)).toBe(0);
    expect(seqs()).toEqual([1, 2, 3]);
  });

  it('drain reports the rows it could not write by the deadline', async () => {
    const { fs, failing } = flakyFs();
    const { writer } = make({}, createInlineRunner({ ...defaultWriteDeps, fs }));
    failing.code = 'ENOSPC';
    void writer.enqueue('data', [reading(1), reading(2)], Date.now());
    expect(await writer.drain(100)).toBe(2);
  });

  it('computes Retry-After from queue depth over the drain rate, between 1 and 60', async () => {
    const { writer } = make({}, createInlineRunner());
    await writer.enqueue('data', [reading(1)], Date.now());
    expect(writer.retryAfterSec()).toBe(1);
  });

  it('refuses rows once closed', async () => {
    const { writer } = make({}, createInlineRunner());
    await writer.close();
    expect(writer.isAlive()).toBe(false);
    const refusal = thrownBy(() => writer.enqueue('data', [reading(1)], Date.now()));
    expect(refusal).toBeInstanceOf(WriterClosedError);
    expect(toRequestError(refusal)).toMatchObject({ statusCode: 503, code: 'SHUTTING_DOWN', message: 'the server is shutting down' });
  });
});

describe('createWriter limits (SPEC section 11)', () => {
  it('bounds the queue in bytes of encoded rows: a request that does not fit gets a 503, one that never could a 413', async () => {
    const runner = heldRunner();
    const { writer } = make({ WRITE_QUEUE_MAX_BYTES: '2048' }, runner);
    const big = (n: number): Reading => ({ columns: ['text'], cells: ['x'.repeat(n)] });
    void writer.enqueue('data', [big(1500)], Date.now());
    expect(writer.bytes).toBeGreaterThan(1500);
    const full = thrownBy(() => writer.enqueue('data', [big(600)], Date.now()));
    expect(full).toBeInstanceOf(QueueFullError);
    expect(toRequestError(full)).toMatchObject({ statusCode: 503, code: 'QUEUE_FULL', message: expect.stringMatching(/of 2048 bytes, WRITE_QUEUE_MAX_BYTES/) });
    const never = thrownBy(() => writer.enqueue('data', [big(3000)], Date.now()));
    expect(never).toBeInstanceOf(TooLargeForQueueError);
    expect(toRequestError(never)).toMatchObject({ statusCode: 413, code: 'BATCH_TOO_LARGE' });
    expect(writer.length).toBe(1);
    runner.release();
    await waitFor(() => writer.length === 0, 'the queue to drain');
    expect(writer.bytes).toBe(0);
  });

  it('counts a commit unfinished after WRITE_TIMEOUT_SEC as hung and stalled, until it returns', async () => {
    const runner = heldRunner();
    let clock = Date.now();
    const { logger, lines } = memoryLogger();
    writer = createWriter({ config: testConfig(dir.path, { WRITE_TIMEOUT_SEC: '0.05' }), runner, logger, now: () => clock });
    const stored = writer.enqueue('data', [reading(1)], clock);
    expect(writer.writing).toBe(true);
    expect(writer.hung).toBe(false);
    clock += 60;
    expect(writer.hung).toBe(true);
    expect(writer.stalled).toBe(true);
    await waitFor(() => lines.some((l) => l.msg === 'writer stalled' && l.hung === true && l.level === 40), 'the hung WARN');
    runner.release();
    await stored;
    expect(writer.hung).toBe(false);
    expect(writer.stalled).toBe(false);
    expect(lines.some((l) => l.msg === 'writer recovered' && l.level === 30)).toBe(true);
  });

  it('writes the request that would pass MAX_COLUMNS in the next commit, into a file of its own; every ack settles', async () => {
    const { tasks, runner, release } = firstTaskHeld();
    const { writer, lines } = make({ MAX_COLUMNS: '3' }, runner);
    const first = writer.enqueue('data', [{ columns: ['a', 'b'], cells: ['1', '2'] }], Date.now());
    const fits = writer.enqueue('data', [{ columns: ['a'], cells: ['3'] }], Date.now());
    const wide = writer.enqueue('data', [{ columns: ['c', 'd', 'e'], cells: ['4', '5', '6'] }], Date.now());
    release();
    await Promise.all([first, fits, wide]);
    expect(tasks.map((task) => task.files[0]?.requests)).toEqual([[1], [1, 1], [1]]);
    expect(readCsv(join(dir.path, 'data.csv')).map((r) => r.slice(1))).toEqual([['c', 'd', 'e'], ['4', '5', '6']]);
    expect(lines.some((l) => l.msg === 'csv schema changed' && l.reset === true)).toBe(true);
    expect(writer.length).toBe(0);
  });
});

describe('encodedBytes', () => {
  it('counts cells in UTF-8 with their commas and what each costs in memory, the column names a row holds, and the row overhead', () => {
    expect(encodedBytes([{ columns: ['a'], cells: ['x'] }])).toBe(25 + 2 + 64 + 1);
    expect(encodedBytes([{ columns: ['t'], cells: ['°C'] }])).toBe(25 + 4 + 64 + 1);
    // Long keys with empty cells take little room on disk, but the queue holds every name.
    const wide = { columns: Array.from({ length: 1000 }, (_, i) => `${'k'.repeat(120)}${i}`), cells: Array.from({ length: 1000 }, () => '') };
    expect(encodedBytes([wide])).toBeGreaterThan(120_000);
  });
});

/** What `act` throws (it must throw). */
function thrownBy(act: () => unknown): unknown {
  try {
    act();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}
