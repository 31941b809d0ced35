import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DISK_WARN_INTERVAL_MS, createDiskSpace } from '../../src/server/disk-space.js';
import { createMetrics } from '../../src/server/metrics.js';
import { createStreamActivity } from '../../src/server/stream-activity.js';
import { listStoredFiles } from '../../src/storage/stream-files.js';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';
import { testConfig } from '../support/writer.js';

const dir = useTempDir();

/** A disk whose free blocks the test sets, and a clock it moves. */
function fakeDisk(minFreeBytes: number) {
  const state = { blocks: 100, now: 0, fails: false };
  const { logger, lines } = memoryLogger();
  const disk = createDiskSpace({
    dataDir: dir.path,
    minFreeBytes,
    logger,
    listFiles: async () => (await listStoredFiles(dir.path, ['data', 'data2'], Date.now())).map((file) => file.path),
    now: () => state.now,
    statfs: () => (state.fails ? Promise.reject(new Error('EIO')) : Promise.resolve({ bavail: state.blocks, bsize: 1024 })),
    watch: false,
  });
  const said = () => lines.filter((line) => line.component === 'disk').map((line) => `${String(line.level)} ${String(line.msg)} ${String(line.free_bytes)}`);
  return { state, disk, said };
}

describe('disk space (SPEC section 12)', () => {
  it('WARNs "disk space low" below the floor, again at most once a minute while it lasts, and INFOs "disk space recovered"', async () => {
    const { state, disk, said } = fakeDisk(50 * 1024);
    await disk.check();
    expect(said()).toEqual([]);
    state.blocks = 10;
    await disk.check();
    state.now += DISK_WARN_INTERVAL_MS - 1;
    await disk.check();
    expect(said()).toEqual(['40 disk space low 10240']);
    state.now += 1;
    state.blocks = 9;
    await disk.check();
    expect(said()).toEqual(['40 disk space low 10240', '40 disk space low 9216']);
    state.blocks = 50;
    await disk.check();
    await disk.check();
    expect(said()).toEqual(['40 disk space low 10240', '40 disk space low 9216', '30 disk space recovered 51200']);
  });

  it('says nothing when the free space cannot be read, and never warns with a floor of 0', async () => {
    const failing = fakeDisk(50 * 1024);
    failing.state.fails = true;
    await failing.disk.check();
    expect(failing.said()).toEqual([]);
    const off = fakeDisk(0);
    off.state.blocks = 0;
    await off.disk.check();
    expect(off.said()).toEqual([]);
  });

  it('reports the free space and the stream files as stored in /metrics and its JSON view', async () => {
    writeFileSync(join(dir.path, 'data.csv'), 'x'.repeat(1000));
    writeFileSync(join(dir.path, 'data.20261123T101500Z.csv'), 'x'.repeat(500));
    writeFileSync(join(dir.path, 'data2-2026-11-23.csv'), 'x'.repeat(25));
    writeFileSync(join(dir.path, 'other.csv'), 'x'.repeat(7777)); // not a stream's file
    const { disk } = fakeDisk(0);
    const config = testConfig(dir.path, { STREAMS: 'data,data2' });
    const registry = new Registry();
    const metrics = createMetrics({ registry, config, activity: createStreamActivity(config.streams, Date.now), queueLength: () => 0, disk, defaultMetrics: false });
    const text = await registry.metrics();
    expect(text).toContain('\ndata_dir_bytes 1525\n');
    expect(text).toContain('\ndata_dir_free_bytes 102400\n');
    expect(await metrics.jsonView()).toMatchObject({ data_dir_bytes: 1525, data_dir_free_bytes: 102400 });
  });
});
