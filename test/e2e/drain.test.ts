/**
 * Graceful stop (SPEC sections 5 and 7), at the process boundary: load the
 * built server, signal it right after the last answer, then count rows on
 * disk. Every 2xx row must be in the file exactly once, and the exit code 0.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCsv } from '../support/csv-files.js';
import { pool } from '../support/http-client.js';
import { type ServerProcess, useServers, serverEnv } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const REQUESTS = 3000;
const IN_FLIGHT = 100;

const dir = useTempDir();
const servers = useServers();

/** POSTs one reading a request, `IN_FLIGHT` at a time; returns each answer's status (0 for a network error). */
async function load(url: string, count: number): Promise<number[]> {
  return pool(count, IN_FLIGHT, async (i) => {
    try {
      const response = await fetch(`${url}/data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: `r${i}`, seq: i, note: 'drain, "quoted"' }),
      });
      await response.arrayBuffer();
      return response.status;
    } catch {
      return 0;
    }
  });
}

/** Checks the file against the 2xx answers: header once, first; every 2xx id exactly once, nothing else. */
function expectRowsMatch(file: string, statuses: number[]): void {
  const records = readCsv(file); // strict column count: a torn or glued row fails here
  expect(records[0]).toEqual(['received_at', 'id', 'seq', 'note']);
  expect(records.filter((record) => record[0] === 'received_at')).toHaveLength(1);

  const rows = records.slice(1);
  const okIds = statuses.flatMap((status, i) => (status >= 200 && status < 300 ? [`r${i}`] : []));
  expect(rows).toHaveLength(okIds.length);
  const fileIds = rows.map((row) => row[1]);
  console.log(`drain ${file}: rows acknowledged ${okIds.length}, rows found ${rows.length}, duplicates ${fileIds.length - new Set(fileIds).size}`);
  expect(new Set(fileIds).size).toBe(fileIds.length); // each once
  expect([...fileIds].sort()).toEqual([...okIds].sort());
  for (const row of rows) {
    expect(row[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(row[2]).toBe((row[1] as string).slice(1));
    expect(row[3]).toBe('drain, "quoted"');
  }
}

function shutdownLine(s: ServerProcess): Record<string, unknown> | undefined {
  return s.logLines().find((line) => line.msg === 'shutting down');
}

describe('graceful stop under load', () => {
  it(`SIGTERM right after the last of ${REQUESTS} POSTs (${IN_FLIGHT} in flight): rows on disk = 2xx answers, exit 0`, async () => {
    const s = await servers.start(serverEnv(dir.path));

    const statuses = await load(s.url, REQUESTS);
    s.child.kill('SIGTERM');
    const exit = await s.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    // A queue of 5000 rows cannot fill with 100 one-row requests in flight: all are accepted.
    expect(statuses.filter((status) => status === 202)).toHaveLength(REQUESTS);
    expectRowsMatch(join(dir.path, 'data', 'data.csv'), statuses);
    expect(shutdownLine(s)).toMatchObject({ signal: 'SIGTERM' });
    expect(s.logLines().some((line) => line.msg === 'stopped')).toBe(true);
  });

  it('SIGINT in ACK_MODE=queued with rows still waiting for a group commit: the drain writes them all, exit 0', async () => {
    // A long commit interval keeps the last answered rows in memory when the
    // signal lands, so the drain has real work; SPEC section 9 says a
    // shutdown drain ignores the interval.
    const s = await servers.start(serverEnv(dir.path, {
      ACK_MODE: 'queued',
      COMMIT_INTERVAL_MS: '20000',
    }));

    const statuses = await load(s.url, 1000);
    s.child.kill('SIGINT');
    const exit = await s.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(statuses.filter((status) => status === 202)).toHaveLength(1000);
    const rowsAtSignal = shutdownLine(s)?.rows;
    expect(shutdownLine(s)).toMatchObject({ signal: 'SIGINT' });
    expect(rowsAtSignal).toBeGreaterThan(0);
    expectRowsMatch(join(dir.path, 'data', 'data.csv'), statuses);
  });

  it('SIGTERM with durable requests waiting on a long COMMIT_INTERVAL_MS: the drain ignores the interval, answers 201, exit 0 at once', async () => {
    const s = await servers.start(serverEnv(dir.path, {
      ACK_MODE: 'durable',
      COMMIT_INTERVAL_MS: '60000',
      SHUTDOWN_TIMEOUT_SEC: '10',
      DURABLE_ACK_TIMEOUT_SEC: '60',
    }));
    const post = (i: number) =>
      fetch(`${s.url}/data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: `r${i}`, seq: i, note: 'drain, "quoted"' }),
      }).then(
        async (response) => (await response.arrayBuffer(), response.status),
        () => 0,
      );

    // The first commit runs at once; it starts the 60 s interval.
    expect(await post(0)).toBe(201);
    // These wait for the next commit, 60 s away, unless the shutdown drain starts it.
    const waiting = Array.from({ length: 50 }, (_, i) => post(i + 1));
    await waitFor(async () => {
      const ready = (await (await fetch(`${s.url}/readyz`)).json()) as { checks: { queue: { length: number } } };
      return ready.checks.queue.length === 50;
    }, 'the 50 durable requests to be queued');

    const signalledAt = Date.now();
    s.child.kill('SIGTERM');
    const [exit, statuses] = await Promise.all([s.exited, Promise.all(waiting)]);
    const stopMs = Date.now() - signalledAt;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(statuses).toEqual(new Array(50).fill(201));
    expect(stopMs).toBeLessThan(5000);
    expectRowsMatch(join(dir.path, 'data', 'data.csv'), [201, ...statuses]);
  });
});
