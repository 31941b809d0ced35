/**
 * Disk full: DATA_DIR on a tiny tmpfs, filled up under load. Writes fail with
 * ENOSPC and are retried, ingest turns 503 once the queue is full, /readyz is
 * 503; once space is freed every acknowledged row lands, once, whole, under
 * one header.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCsv } from '../support/csv-files.js';
import { postJson } from '../support/http-client.js';
import { useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { NO_TMPFS, fill, mountTmpfs, unmountAll } from '../support/tmpfs.js';
import { waitFor } from '../support/wait.js';

const dir = useTempDir();
// Registered before useServers: vitest runs afterEach hooks last first, so the server stops before the unmount.
afterEach(() => unmountAll());
const servers = useServers();

async function metricsJson(url: string): Promise<Record<string, number>> {
  return (await (await fetch(`${url}/metrics?format=json`)).json()) as Record<string, number>;
}

/** A 512 KB tmpfs in the test's folder; null (the test skipped) where it cannot be mounted. */
function smallDisk(context: { skip: (note: string) => void }): string | null {
  const disk = join(dir.path, 'disk');
  if (mountTmpfs(disk, '512k')) return disk;
  context.skip(NO_TMPFS);
  return null;
}

describe('disk full', () => {
  it.for([
    ['LOG_DIR elsewhere', false],
    ['LOG_DIR on the same full disk', true],
  ] as const)('retries ENOSPC, turns 503 when the queue fills, and lands every acknowledged row once space is freed (%s)', async ([what, logsOnSameDisk], context) => {
    const disk = smallDisk(context);
    if (disk === null) return;
    const dataDir = join(disk, 'data');
    const server = await servers.start({
      DATA_DIR: dataDir,
      LOG_DIR: logsOnSameDisk ? join(disk, 'logs') : join(dir.path, 'logs'),
      // The 512 KB disk is under any useful free-space floor (SPEC section 12): this test is about ENOSPC itself.
      DISK_MIN_FREE_BYTES: '0',
      WRITE_QUEUE_MAXSIZE: '100',
      WRITE_RETRIES: '2',
      WRITE_BACKOFF_BASE_SEC: '0.02',
      WRITE_BACKOFF_MAX_SEC: '0.2',
    });
    const url = server.url;
    const acked: number[] = [];
    let seq = 0;
    const send = async () => {
      const id = seq++;
      const res = await postJson(`${url}/data`, { id, note: 'x'.repeat(100) });
      if (res.status === 202) acked.push(id);
      return res;
    };
    for (let i = 0; i < 20; i++) expect((await send()).status).toBe(202);
    await waitFor(async () => (await metricsJson(url)).write_success_total === 20, 'the first rows on disk');

    const filler = fill(disk);
    // Keep the load on until the queue is full.
    let refused: Awaited<ReturnType<typeof send>> | undefined;
    await waitFor(async () => {
      const res = await send();
      if (res.status === 503) refused = res;
      return res.status === 503;
    }, 'ingest to answer 503');
    expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((refused?.body as { code: string }).code).toBe('QUEUE_FULL');
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: { queue: { ok: boolean } } }).checks.queue.ok).toBe(false);
    const during = await metricsJson(url);
    expect(during.write_error_total).toBeGreaterThan(0);
    expect(server.logLines().some((l) => l.msg === 'write failed' && l.code === 'ENOSPC' && l.level === 50)).toBe(true);

    rmSync(filler);
    await waitFor(async () => (await metricsJson(url)).queue_length === 0 && (await fetch(`${url}/readyz`)).status === 200, 'the queue to drain');
    expect((await send()).status).toBe(202);

    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    const records = readCsv(join(dataDir, 'data.csv'));
    const ids = records.slice(1).map((r) => Number(r[1]));
    const duplicates = ids.length - new Set(ids).size;
    const torn = records.slice(1).filter((r) => r.length !== 3 || r[2] !== 'x'.repeat(100)).length;
    console.log(`disk full, ${what}: rows acknowledged ${acked.length}, rows found ${ids.length}, duplicates ${duplicates}, torn rows ${torn}`);
    expect(records[0]).toEqual(['received_at', 'id', 'note']);
    expect(records.slice(1).some((r) => r[0] === 'received_at')).toBe(false);
    expect(duplicates).toBe(0);
    expect(torn).toBe(0);
    expect(ids).toEqual(acked);
  });

  it('SIGTERM while the disk is full: an ERROR with the count of rows not written, and exit 1 within SHUTDOWN_TIMEOUT_SEC (SPEC 7)', async (context) => {
    const disk = smallDisk(context);
    if (disk === null) return;
    const dataDir = join(disk, 'data');
    const server = await servers.start({
      DATA_DIR: dataDir,
      LOG_DIR: join(dir.path, 'logs'),
      DISK_MIN_FREE_BYTES: '0',
      WRITE_RETRIES: '1',
      WRITE_BACKOFF_BASE_SEC: '0.02',
      WRITE_BACKOFF_MAX_SEC: '0.2',
      SHUTDOWN_TIMEOUT_SEC: '3',
    });
    const url = server.url;
    expect((await postJson(`${url}/data?ack=durable`, { id: 0 })).status).toBe(201);
    fill(disk);
    for (let id = 1; id <= 5; id++) expect((await postJson(`${url}/data`, { id, note: 'x'.repeat(100) })).status).toBe(202);
    await waitFor(async () => ((await metricsJson(url)).write_error_total ?? 0) > 0, 'a failed write');

    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    const stopMs = Date.now() - signalledAt;

    expect(exit.code).toBe(1);
    const error = server.logLines().find((line) => line.msg === 'shutdown timed out with rows not written');
    expect(error).toMatchObject({ level: 50, rows: 5 });
    // 3 s, and the log flush after it (at most 2 s); well short of the unit's TimeoutStopSec.
    expect(stopMs).toBeLessThan(3_000 + 2_500);
    expect(stopMs).toBeGreaterThanOrEqual(2_900);
  });
});
