/**
 * A lock held from outside (another process, a stuck peer) is a write fault
 * like any other (SPEC sections 5 and 9): the writer retries with backoff,
 * stalls, fills its queue, answers 503 with Retry-After, and once the lock is
 * free writes every acknowledged row, in order, exactly once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { afterEach, describe, expect, it } from 'vitest';
import { readCsv } from '../support/csv-files.js';
import { postJson } from '../support/http-client.js';
import { jsonLines } from '../support/logs.js';
import { type ServerProcess, useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const QUEUE_MAX = 20;
const WRITE_RETRIES = 2;

const dir = useTempDir('sensor-ingest-lock-');
const servers = useServers();
let release: (() => Promise<void>) | undefined;
afterEach(async () => {
  await release?.().catch(() => {});
  release = undefined;
});

/** Stored log lines, skipping a last line that is still being written. */
function logLines(from: ServerProcess): Array<Record<string, unknown>> {
  return jsonLines(from.output());
}

async function readyz(url: string): Promise<{ status: number; body: { status: string; checks: Record<string, Record<string, unknown>> } }> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as never };
}

describe('a data file locked from outside', () => {
  it("holds the file's lock from outside: writes retry, ingest reaches 503 with Retry-After once the queue is full, and after the lock is released every acknowledged row lands, in order", async () => {
    const dataDir = join(dir.path, 'data');
    const csv = join(dataDir, 'data.csv');
    const server = await servers.start({
      DATA_DIR: dataDir,
      LOG_DIR: join(dir.path, 'logs'),
      WRITE_QUEUE_MAXSIZE: String(QUEUE_MAX),
      WRITE_RETRIES: String(WRITE_RETRIES),
      WRITE_BACKOFF_BASE_SEC: '0.05',
      WRITE_BACKOFF_MAX_SEC: '1',
    });
    const { url } = server;
    expect((await readyz(url)).status).toBe(200);

    // The lock exactly as the server takes it (src/writer/write-batch.ts LOCK_OPTIONS):
    // proper-lockfile's `data.csv.lock` directory, realpath false, stale after 10 s.
    let compromised: unknown;
    release = await lockfile.lock(csv, {
      realpath: false,
      stale: 10_000,
      onCompromised: (error) => {
        compromised = error;
      },
    });
    expect(existsSync(`${csv}.lock`)).toBe(true);

    // One reading at a time, seq rising, until the queue is full.
    const acked: number[] = [];
    let refused: { seq: number; status: number; headers: Headers; body: unknown } | undefined;
    for (let seq = 1; seq <= QUEUE_MAX * 5 && refused === undefined; seq++) {
      const response = await postJson(`${url}/data`, { seq, sensor: 'held-lock', note: `reading ${seq}` });
      if (response.status === 202) acked.push(seq);
      else refused = { seq, ...response };
    }
    expect(refused?.status, 'ingest answers 503 once the queue is full').toBe(503);
    // Nothing can drain while the lock is held: exactly the queue's worth was taken.
    expect(acked).toEqual(Array.from({ length: QUEUE_MAX }, (_, i) => i + 1));
    const retryAfter = refused?.headers.get('retry-after') ?? '';
    expect(retryAfter).toMatch(/^\d+$/);
    // SPEC section 9: when nothing drains, at least WRITE_BACKOFF_MAX_SEC (1 s here).
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    expect(refused?.body).toMatchObject({ error: expect.any(String) });
    expect((refused?.body as { error: string }).error.length).toBeGreaterThan(0);

    // Past WRITE_RETRIES failed attempts the writer is stalled: /readyz says so.
    const notReady = await waitFor(async () => {
      const ready = await readyz(url);
      return ready.status === 503 && ready.body.checks.writer?.ok === false ? ready : undefined;
    }, '/readyz to report the writer stalled');
    expect(notReady.body.status).toBe('error');
    expect(notReady.body.checks.writer).toMatchObject({ ok: false, stalled: true, alive: true });
    expect(notReady.body.checks.queue).toMatchObject({ ok: false, length: QUEUE_MAX, max: QUEUE_MAX });

    // Every failed attempt logs an ERROR with the lock's code; the stalled batch keeps
    // being retried (every WRITE_BACKOFF_MAX_SEC), not dropped: wait for one retry past the stall.
    const failures = await waitFor(() => {
      const lines = logLines(server).filter((line) => line.msg === 'write failed');
      // WRITE_RETRIES + 1 attempts stall the writer; one more is a retry of the stalled batch.
      return lines.length >= WRITE_RETRIES + 2 ? lines : undefined;
    }, 'ERROR lines for the stalled retries');
    for (const line of failures) expect(line).toMatchObject({ level: 50, code: 'ELOCKED', file: 'data.csv' });
    expect(logLines(server).some((line) => line.msg === 'writer stalled' && line.level === 40)).toBe(true);
    // Nothing reached the file while the lock was held, and it is still refused.
    expect(existsSync(csv)).toBe(false);
    expect((await postJson(`${url}/data`, { seq: 0, sensor: 'held-lock', note: 'refused' })).status).toBe(503);
    expect(compromised).toBeUndefined();

    await (release)();
    release = undefined;

    // Every acknowledged seq lands, in acceptance order, exactly once; the refused ones never do.
    const seqs = await waitFor(() => {
      const records = readCsv(csv);
      return records.length - 1 >= acked.length ? records.slice(1).map((record) => Number(record[1])) : undefined;
    }, 'the acknowledged rows to reach data.csv');
    expect(readCsv(csv)[0]).toEqual(['received_at', 'seq', 'sensor', 'note']);
    console.log(`held lock: rows acknowledged ${acked.length}, rows found ${seqs.length}, duplicates ${seqs.length - new Set(seqs).size}`);
    expect(seqs).toEqual(acked);
    await waitFor(async () => (await readyz(url)).status === 200, '/readyz to answer 200 again');
    expect(logLines(server).some((line) => line.msg === 'writer recovered')).toBe(true);

    // Ingest takes rows again, behind the drained ones.
    const next = (refused?.seq ?? 0) + 1;
    expect((await postJson(`${url}/data`, { seq: next, sensor: 'held-lock', note: `reading ${next}` })).status).toBe(202);
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(readCsv(csv).slice(1).map((record) => Number(record[1]))).toEqual([...acked, next]);
    expect(existsSync(`${csv}.lock`)).toBe(false);
  });
});
