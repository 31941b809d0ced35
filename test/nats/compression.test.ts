/**
 * Compression and forwarding (SPEC section 12): with forwarding on, a closed
 * file is compressed only once JetStream has all its rows; a file compressed
 * while forwarding was off is forwarded from its `.gz`, under the message ids
 * its plain form would have had, so the collector writes every row once; and
 * the collector compresses its own closed central files.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { createCompression } from '../../src/server/compression.js';
import { listCentralFiles } from '../../src/collector/central-files.js';
import { isJournaledWhole, openCollectJournal } from '../../src/collector/journal.js';
import { lockForCommit } from '../../src/storage/lock.js';
import { encodeFileState, stateDirOf, statePathOf } from '../../src/storage/file-state.js';
import { listStoredFiles } from '../../src/storage/stream-files.js';
import { collectorOn, edgeOn } from '../support/in-process.js';
import { freePort } from '../support/http-client.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { memoryLogger } from '../support/logs.js';

afterAll(stopAllNats);

const DAY = 86_400_000;
const reading = (i: number) => ({ columns: ['id'], cells: [`r${i}`] });

/** The ids in a CSV file, plain or `.gz`. */
function idsIn(path: string): string[] {
  const bytes = readFileSync(path);
  const text = path.endsWith('.gz') ? gunzipSync(bytes).toString() : bytes.toString();
  return text.trim().split('\n').slice(1).map((line) => line.split(',')[1] ?? '');
}

/** Every id in the collector's files for site `pi`. */
function centralIds(centralDir: string): string[] {
  const site = join(centralDir, 'pi');
  if (!existsSync(site)) return [];
  return readdirSync(site)
    .filter((name) => /\.csv(\.gz)?$/.test(name))
    .flatMap((name) => idsIn(join(site, name)));
}

describe('compression and forwarding', () => {
  it('a .gz state left without its file (a compression cut before its rename) is passed over quietly', async () => {
    const edgeDir = testDir('compress-orphan-');
    const { lines, forwarder, writer } = edgeOn(edgeDir, { NATS_URL: `nats://127.0.0.1:${await freePort()}`, SITE_ID: 'pi', STREAMS: 'data' }, { pollMs: 20 });
    await writer.enqueue('data', [reading(0)], Date.now());
    mkdirSync(stateDirOf(edgeDir), { recursive: true });
    writeFileSync(statePathOf(join(edgeDir, 'data.20261120T000000Z.csv.gz')), encodeFileState({ id: 'aaaaaaaaaaaaaaaa', created: 1, synced: 40 }));
    // Passes go on (each new row is counted), and none of them complains about the missing .gz.
    for (let i = 1; i <= 5; i++) {
      await writer.enqueue('data', [reading(i)], Date.now());
      await waitFor(() => forwarder.lag().get('data') === i + 1, `row ${i} counted`);
    }
    expect(lines.filter((line) => line.msg === 'cannot read file to forward')).toEqual([]);
  });

  it('compresses a closed file only once JetStream has its rows; then the forwarder settles its .gz without sending it again', async (context) => {
    requireNatsServer(context);
    const natsPort = await freePort();
    const edgeDir = testDir('compress-edge-');
    const centralDir = testDir('compress-central-');
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    const { lines, forwarder, writer } = edgeOn(edgeDir, { NATS_URL: natsUrl, SITE_ID: 'pi', STREAMS: 'data', CSV_ROTATE: 'daily' }, { pollMs: 50, retryMaxMs: 200 });
    const now = Date.now();
    for (let i = 0; i < 40; i++) await writer.enqueue('data', [reading(i)], now - 5 * DAY);
    for (let i = 40; i < 50; i++) await writer.enqueue('data', [reading(i)], now);
    const oldDay = `data-${new Date(now - 5 * DAY).toISOString().slice(0, 10)}.csv`;

    let compressed = 0;
    const compression = createCompression({
      enabled: true,
      logger: memoryLogger().logger,
      listFiles: () => listStoredFiles(edgeDir, ['data'], now),
      safe: (path) => forwarder.forwarded(basename(path)),
      lock: lockForCommit,
      onCompressed: () => compressed++,
      watch: false,
    });
    await waitFor(() => forwarder.lag().get('data') === 50, 'the forwarder to count every row while NATS is down');
    await compression.run();
    expect(compressed).toBe(0);
    expect(existsSync(join(edgeDir, oldDay))).toBe(true);

    const nats = await startNats({ port: natsPort });
    const collector = collectorOn(nats.url, centralDir, 'c1');
    onTestFinished(collector.stop);
    await waitFor(() => forwarder.forwarded(oldDay), 'the old day file forwarded and settled', 30_000);
    await compression.run();
    expect(compressed).toBe(1);
    expect(idsIn(join(edgeDir, `${oldDay}.gz`))).toHaveLength(40);
    await waitFor(() => forwarder.forwarded(`${oldDay}.gz`), 'the .gz settled (so retention may remove it later)');
    await waitFor(() => centralIds(centralDir).length === 50, '50 central rows');
    const ids = centralIds(centralDir);
    expect(new Set(ids).size).toBe(50);
    expect(lines.filter((line) => line.msg === 'file does not start with received_at; not forwarded')).toEqual([]);
  }, 60_000);

  it('forwards a file compressed while forwarding was off from its .gz, each row once, and the collector compresses its closed files', async (context) => {
    requireNatsServer(context);
    const natsPort = await freePort();
    const edgeDir = testDir('compress-off-edge-');
    const centralDir = testDir('compress-off-central-');
    const { forwarder, writer } = edgeOn(edgeDir, { NATS_URL: `nats://127.0.0.1:${natsPort}`, SITE_ID: 'pi', STREAMS: 'data', CSV_ROTATE: 'daily' }, { pollMs: 50, retryMaxMs: 200 });
    const now = Date.now();
    // 1,500 rows: more than two of the forwarder's chunks (512), so it resumes part-way through the .gz.
    for (let i = 0; i < 1500; i++) await writer.enqueue('data', [reading(i)], now - 5 * DAY);
    for (let i = 1500; i < 1510; i++) await writer.enqueue('data', [reading(i)], now);
    const oldDay = `data-${new Date(now - 5 * DAY).toISOString().slice(0, 10)}.csv`;
    // As if forwarding had been off: nothing to wait for.
    await createCompression({ enabled: true, logger: memoryLogger().logger, listFiles: () => listStoredFiles(edgeDir, ['data'], now), safe: () => true, lock: lockForCommit, watch: false }).run();
    expect(existsSync(join(edgeDir, oldDay))).toBe(false);
    await waitFor(() => forwarder.lag().get('data') === 1510, 'the forwarder to count the .gz rows and the current ones');

    const nats = await startNats({ port: natsPort });
    const collector = collectorOn(nats.url, centralDir, 'c1', { CSV_ROTATE: 'daily' });
    onTestFinished(collector.stop);
    await waitFor(() => forwarder.lag().get('data') === 0, 'forwarding to catch up', 30_000);
    await waitFor(() => centralIds(centralDir).length === 1510, '1510 central rows', 30_000);
    const ids = centralIds(centralDir);
    expect(new Set(ids).size).toBe(1510);
    expect(forwarder.forwarded(`${oldDay}.gz`)).toBe(true);

    // The collector's closed central files, compressed by the same rules: the old day goes, today's stays plain.
    const central = join(centralDir, 'pi');
    const before = idsIn(join(central, oldDay));
    // As the collector program has it: only files whose every row is journaled. A journal that lacks them holds it back.
    const notJournaled = { endOf: () => undefined };
    await createCompression({ enabled: true, logger: collector.logger, listFiles: () => listCentralFiles(centralDir, now), safe: (path) => isJournaledWhole(notJournaled, path), lock: lockForCommit, watch: false }).run();
    expect(readdirSync(central).filter((name) => name.endsWith('.gz'))).toEqual([]);
    const journal = openCollectJournal(centralDir);
    onTestFinished(() => journal.close());
    await createCompression({ enabled: true, logger: collector.logger, listFiles: () => listCentralFiles(centralDir, now), safe: (path) => isJournaledWhole(journal, path), lock: lockForCommit, watch: false }).run();
    expect(readdirSync(central).filter((name) => name.startsWith('data')).sort()).toEqual([`${oldDay}.gz`, `data-${new Date(now).toISOString().slice(0, 10)}.csv`].sort());
    expect(idsIn(join(central, `${oldDay}.gz`))).toEqual(before);
  }, 60_000);
});
