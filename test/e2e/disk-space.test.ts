/**
 * Disk space (SPEC section 12), the way an operator meets it: the built
 * server on a small tmpfs. Below DISK_MIN_FREE_BYTES it WARNs "disk space
 * low", /readyz turns 503 with the free bytes, the metrics show them, and
 * ingest goes on; once room is made it says "disk space recovered".
 */
import { statfsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { postJson } from '../support/http-client.js';
import { logLine, useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { NO_TMPFS, mountTmpfs, unmountAll } from '../support/tmpfs.js';

const dir = useTempDir();
// Registered before useServers: vitest runs afterEach hooks last first, so the server stops before the unmount.
afterEach(() => unmountAll());
const servers = useServers();

const MIB = 1024 * 1024;

interface DataDirCheck {
  ok: boolean;
  free_bytes: number;
  min_free_bytes: number;
}

async function dataDirCheck(url: string): Promise<{ status: number; check: DataDirCheck }> {
  const res = await fetch(`${url}/readyz`);
  const body = (await res.json()) as { checks: { data_dir: DataDirCheck } };
  return { status: res.status, check: body.checks.data_dir };
}

describe('disk space on a small disk', () => {
  it('WARNs and answers /readyz 503 below DISK_MIN_FREE_BYTES, keeps taking rows, and says when room is back', async (context) => {
    const disk = join(dir.path, 'disk');
    if (!mountTmpfs(disk, '16m')) {
      if (process.env.CI) throw new Error(NO_TMPFS);
      context.skip(NO_TMPFS);
      return;
    }
    const server = await servers.start({ DATA_DIR: join(disk, 'data'), LOG_DIR: join(dir.path, 'logs'), DISK_MIN_FREE_BYTES: String(8 * MIB) });
    expect((await dataDirCheck(server.url)).status).toBe(200);

    const filler = join(disk, 'filler.bin');
    writeFileSync(filler, Buffer.alloc(10 * MIB, 0x61));
    const warned = await logLine(server, 'disk space low');
    const { bavail, bsize } = statfsSync(disk);
    expect(warned).toMatchObject({ level: 40, data_dir: join(disk, 'data'), min_free_bytes: 8 * MIB, free_bytes: expect.any(Number) });
    expect(warned.free_bytes).toBeLessThan(8 * MIB);

    const low = await dataDirCheck(server.url);
    expect(low.status).toBe(503);
    expect(low.check).toMatchObject({ ok: false, free_bytes: bavail * bsize, min_free_bytes: 8 * MIB });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`\\ndata_dir_free_bytes ${bavail * bsize}\\n`));
    // Ingest goes on: only a really full disk stops the writer.
    expect((await postJson(`${server.url}/data?ack=durable`, { t: 1 })).status).toBe(201);
    const json = (await (await fetch(`${server.url}/metrics?format=json`)).json()) as Record<string, number>;
    expect(json.data_dir_bytes).toBeGreaterThan(0);
    expect(json.data_dir_free_bytes).toBeLessThan(8 * MIB);

    rmSync(filler);
    expect(await logLine(server, 'disk space recovered')).toMatchObject({ level: 30, free_bytes: expect.any(Number) });
    expect((await dataDirCheck(server.url)).status).toBe(200);
    expect(server.logLines().filter((line) => line.msg === 'disk space low')).toHaveLength(1);
  });
});
