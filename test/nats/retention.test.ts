/**
 * Retention never removes a row JetStream has not acknowledged (SPEC section
 * 12): with NATS down, old closed files wait and retention WARNs; once NATS is
 * there and forwarding catches up, they go. Time is a seam: the rows are
 * written with old received_at values, nothing waits days.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { createRetention } from '../../src/server/retention.js';
import { statePathOf } from '../../src/storage/file-state.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { isClosedFile, listStreamFiles } from '../../src/storage/stream-files.js';
import { listCentralFiles } from '../../src/collector/central-files.js';
import { collectorOn, edgeOn } from '../support/in-process.js';
import { freePort } from '../support/http-client.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

afterAll(stopAllNats);

const DAY = 86_400_000;
const reading = (i: number) => ({ columns: ['id'], cells: [`r${i}`] });

describe('retention and forwarding', () => {
  it('waits (and WARNs) while JetStream lacks a file\'s rows, and removes the file once forwarding has caught up', async (context) => {
    requireNatsServer(context);
    const natsPort = await freePort();
    const dataDir = testDir('retention-');
    const { config, logger, lines, forwarder, writer } = edgeOn(
      dataDir,
      { NATS_URL: `nats://127.0.0.1:${natsPort}`, SITE_ID: 'pi', STREAMS: 'data', CSV_ROTATE: 'daily', RETENTION_DAYS: '3' },
      { pollMs: 50, retryMaxMs: 200 },
    );
    const now = Date.now();
    for (let i = 0; i < 5; i++) await writer.enqueue('data', [reading(i)], now - 10 * DAY);
    for (let i = 5; i < 10; i++) await writer.enqueue('data', [reading(i)], now - 5 * DAY);
    for (let i = 10; i < 15; i++) await writer.enqueue('data', [reading(i)], now);
    const dayFile = (daysAgo: number) => `data-${new Date(now - daysAgo * DAY).toISOString().slice(0, 10)}.csv`;

    const retention = createRetention({
      rules: { days: config.retentionDays, maxBytes: config.retentionMaxBytes },
      logger,
      now: () => now,
      listFiles: async () => (await listStreamFiles(dataDir, 'data')).map((file) => ({ path: join(dataDir, file.name), closed: isClosedFile(file, now) })),
      safe: (path) => forwarder.forwarded(basename(path)),
      lock: lockForCommit,
      watch: false,
    });
    await waitFor(() => forwarder.lag().get('data') === 15, 'the forwarder to count every row while NATS is down');
    await retention.run();
    expect(readdirSync(dataDir).filter((name) => name.endsWith('.csv')).sort()).toEqual([dayFile(10), dayFile(5), dayFile(0)].sort());
    expect(lines.filter((line) => line.msg === 'retention waiting for forwarder')).toEqual([expect.objectContaining({ level: 40, files: 2, oldest: dayFile(10) })]);

    await startNats({ port: natsPort });
    await waitFor(() => forwarder.lag().get('data') === 0, 'forwarding to catch up', 30_000);
    await waitFor(() => forwarder.forwarded(dayFile(10)) && forwarder.forwarded(dayFile(5)), 'both old day files settled');
    await retention.run();
    expect(readdirSync(dataDir).filter((name) => name.endsWith('.csv'))).toEqual([dayFile(0)]);
    expect(existsSync(statePathOf(join(dataDir, dayFile(10))))).toBe(false);
    expect(lines.filter((line) => line.msg === 'retention removed file').map((line) => `${String(line.file)} ${String(line.reason)}`).sort()).toEqual(
      [`${dayFile(10)} age`, `${dayFile(5)} age`].sort(),
    );
    // Today's file is never removed, and nothing it holds was lost.
    expect(forwarder.forwarded(dayFile(0))).toBe(false);
  }, 60_000);

  it('the collector removes old central files by the same rules, and a row of a removed file sent again is still skipped', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const edgeDir = testDir('retention-edge-');
    const centralDir = testDir('retention-central-');
    const { writer } = edgeOn(edgeDir, { NATS_URL: nats.url, SITE_ID: 'pi', STREAMS: 'data' });
    const now = Date.now();
    for (let i = 0; i < 20; i++) await writer.enqueue('data', [reading(i)], now - 10 * DAY);
    for (let i = 20; i < 30; i++) await writer.enqueue('data', [reading(i)], now);

    const centralEnv = { CSV_ROTATE: 'daily', RETENTION_DAYS: '3' };
    const first = collectorOn(nats.url, centralDir, 'first', centralEnv);
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const oldFile = join(centralDir, 'pi', `data-${day(now - 10 * DAY)}.csv`);
    const newFile = join(centralDir, 'pi', `data-${day(now)}.csv`);
    const rowsIn = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').length - 1 : 0);
    await waitFor(() => rowsIn(oldFile) === 20 && rowsIn(newFile) === 10, '30 central rows in two day files');
    const retention = createRetention({
      rules: { days: first.config.retentionDays, maxBytes: first.config.retentionMaxBytes },
      logger: first.logger,
      now: () => now,
      listFiles: () => listCentralFiles(centralDir, now),
      safe: () => true,
      lock: lockForCommit,
      watch: false,
    });
    await retention.run();
    expect(existsSync(oldFile)).toBe(false);
    expect(existsSync(newFile)).toBe(true);
    expect(first.lines.filter((line) => line.msg === 'retention removed file')).toEqual([expect.objectContaining({ file: basename(oldFile), reason: 'age' })]);
    await first.stop();

    // A new consumer replays the whole stream: the removed file's rows are in the journal, so none is written again.
    const second = collectorOn(nats.url, centralDir, 'second', centralEnv);
    onTestFinished(second.stop);
    await waitFor(async () => (await second.registry.getSingleMetricAsString('collect_duplicates_total')).endsWith(' 30'), '30 duplicates skipped');
    expect(existsSync(oldFile)).toBe(false);
    expect(readdirSync(join(centralDir, 'pi')).filter((name) => name.endsWith('.csv'))).toEqual([basename(newFile)]);
    expect(rowsIn(newFile)).toBe(10);
  }, 60_000);
});
