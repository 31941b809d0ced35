/**
 * The forwarder and the collector run in this process against a real
 * nats-server, so their timing can be shortened and their log lines read:
 * the lag WARN and the caught-up INFO, the collector's journal skipping a
 * whole replay, and the collector's HTTP endpoints.
 */
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { createForwardMetrics } from '../../src/forwarder/metrics.js';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { writeFileStateDurably } from '../../src/storage/file-state.js';
import { createInlineRunner } from '../../src/writer/runners.js';
import { createWriter } from '../../src/writer/writer.js';
import { collectorOn, edgeOn } from '../support/in-process.js';
import { rowsOf } from '../support/edge-central.js';
import { freePort } from '../support/http-client.js';
import { memoryLogger } from '../support/logs.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { testConfig } from '../support/writer.js';

afterAll(stopAllNats);

const dir = () => testDir('nats-inproc-');

const reading = (i: number) => ({ columns: ['id', 'temp'], cells: [`r${i}`, String(20 + i / 10)] });

describe('the forwarder, in process', () => {
  it('counts the lag while NATS is down, WARNs "forward lagging" when it does not fall, and says "forward caught up" once NATS is there', async (context) => {
    requireNatsServer(context);
    const natsPort = await freePort();
    const dataDir = dir();
    // A user and password in the URL (SPEC section 10), which this nats-server requires; the log must never show them.
    const config = testConfig(dataDir, { NATS_URL: `nats://alice:s3cret-pw@127.0.0.1:${natsPort}`, SITE_ID: 'pi', STREAMS: 'data' });
    const { logger, lines } = memoryLogger();
    const registry = new Registry();
    const forwarder = startForwarder({
      config,
      logger,
      metrics: createForwardMetrics(registry, config.streams),
      timing: { pollMs: 50, lagWarnMs: 300, lagCheckMs: 50, retryMaxMs: 200 },
    });
    onTestFinished(() => forwarder.close());
    const writer = createWriter({ config, runner: createInlineRunner(), logger, events: { fileWritten: () => forwarder.notify() } });
    onTestFinished(() => writer.close());

    await Promise.all(Array.from({ length: 30 }, (_, i) => writer.enqueue('data', [reading(i)], Date.now())));
    await waitFor(() => forwarder.lag().get('data') === 30, 'the lag to count 30 rows');
    expect(forwarder.connected).toBe(false);
    await waitFor(() => lines.some((line) => line.msg === 'forward lagging' && line.rows === 30), 'the forward lagging WARN');
    expect(lines.find((line) => line.msg === 'forward lagging')?.level).toBe(40);
    expect(await registry.getSingleMetricAsString('forward_lag_rows')).toContain('forward_lag_rows{stream="data"} 30');

    const nats = await startNats({ port: natsPort, extraArgs: ['--user', 'alice', '--pass', 's3cret-pw'] });
    await waitFor(() => forwarder.lag().get('data') === 0, 'the lag back to 0', 30_000);
    await waitFor(() => lines.some((line) => line.msg === 'forward caught up'), 'the forward caught up INFO');
    expect(forwarder.holdsLock).toBe(true);
    const nc = await connect({ servers: nats.url, user: 'alice', pass: 's3cret-pw' });
    const info = await (await jetstreamManager(nc)).streams.info('SENSORS');
    await nc.close();
    expect(info.state.messages).toBe(30);
    expect(info.config.subjects).toEqual(['sensors.>']);
    expect(info.config.duplicate_window).toBe(600 * 1e9);
    expect(await registry.getSingleMetricAsString('forward_rows_total')).toContain('forward_rows_total{stream="data"} 30');
    // Credentials never reach the log, even in the connect lines.
    expect(JSON.stringify(lines)).not.toContain('s3cret-pw');
  }, 60_000);

  it('stops counting a file removed by hand (an old archive) in the lag', async () => {
    const dataDir = dir();
    const config = testConfig(dataDir, { NATS_URL: `nats://127.0.0.1:${await freePort()}`, SITE_ID: 'pi', STREAMS: 'data' });
    const { logger } = memoryLogger();
    const forwarder = startForwarder({ config, logger, metrics: createForwardMetrics(new Registry(), config.streams), timing: { pollMs: 50 } });
    onTestFinished(() => forwarder.close());
    const writer = createWriter({ config, runner: createInlineRunner(), logger, events: { fileWritten: () => forwarder.notify() } });
    onTestFinished(() => writer.close());
    for (let i = 0; i < 4; i++) await writer.enqueue('data', [reading(i)], Date.now());
    // A new key archives data.csv: 4 rows in the archive, 1 in the new file.
    await writer.enqueue('data', [{ columns: ['id', 'extra'], cells: ['r4', 'x'] }], Date.now());
    await waitFor(() => forwarder.lag().get('data') === 5, 'the lag to count both files');
    const archive = readdirSync(dataDir).find((name) => /^data\.\d{8}T\d{6}Z\.csv$/.test(name)) as string;
    unlinkSync(join(dataDir, archive));
    unlinkSync(join(dataDir, '.sensor-ingest', 'files', `${archive}.state`));
    await waitFor(() => forwarder.lag().get('data') === 1, 'the lag without the removed archive');
  });

  it('with daily rotation, sends each day file in turn, oldest first', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const dataDir = dir();
    const config = testConfig(dataDir, { NATS_URL: nats.url, SITE_ID: 'pi', STREAMS: 'data', CSV_ROTATE: 'daily' });
    const { logger } = memoryLogger();
    const writer = createWriter({ config, runner: createInlineRunner(), logger });
    onTestFinished(() => writer.close());
    const day = 86_400_000;
    const today = Date.now();
    // Three day files, written one after the other before forwarding starts: sent in the order they were created.
    for (let i = 0; i < 5; i++) await writer.enqueue('data', [reading(i)], today - 2 * day);
    for (let i = 5; i < 10; i++) await writer.enqueue('data', [reading(i)], today - day);
    for (let i = 10; i < 15; i++) await writer.enqueue('data', [reading(i)], today);
    const forwarder = startForwarder({ config, logger, metrics: createForwardMetrics(new Registry(), config.streams) });
    onTestFinished(() => forwarder.close());
    const nc = await connect({ servers: nats.url });
    onTestFinished(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info('SENSORS').catch(() => undefined))?.state.messages === 15, '15 messages in the stream');
    const ids: string[] = [];
    for (let seq = 1; seq <= 15; seq++) {
      const message = await jsm.streams.getMessage('SENSORS', { seq });
      const row = (message as NonNullable<typeof message>).json<{ file: string; cells: { id: string } }>();
      ids.push(row.cells.id);
      expect(row.file).toMatch(/^data-\d{4}-\d{2}-\d{2}\.csv$/);
    }
    expect(ids).toEqual(Array.from({ length: 15 }, (_, i) => `r${i}`));
  }, 60_000);
});

describe('the collector, in process', () => {
  it('writes what a forwarder sent, and a second consumer replaying the whole stream onto the same journal writes nothing twice', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const edgeDir = dir();
    const centralDir = dir();
    const { writer } = edgeOn(edgeDir, { NATS_URL: nats.url, SITE_ID: 'pi', STREAMS: 'data' });
    await Promise.all(Array.from({ length: 50 }, (_, i) => writer.enqueue('data', [reading(i)], Date.now())));

    const first = collectorOn(nats.url, centralDir, 'first');
    await waitFor(() => rowsOf(join(centralDir, 'pi'), 'data').length === 50, '50 central rows');
    const ready = await request(first.app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks.nats).toEqual({ ok: true });
    expect((await request(first.app).get('/metrics')).text).toContain('collect_rows_total{site="pi",stream="data"} 50');
    expect((await request(first.app).get('/nowhere')).status).toBe(404);
    await first.stop();

    // A new consumer starts from the stream's first message: every row is one the journal has.
    const second = collectorOn(nats.url, centralDir, 'second');
    onTestFinished(second.stop);
    await waitFor(async () => (await second.registry.getSingleMetricAsString('collect_duplicates_total')).endsWith(' 50'), '50 duplicates skipped');
    expect(rowsOf(join(centralDir, 'pi'), 'data').map((row) => row.id)).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`));
    expect(rowsOf(edgeDir, 'data')).toEqual(rowsOf(join(centralDir, 'pi'), 'data'));
  }, 60_000);
});

describe('the forwarder and a file not in our form', () => {
  it('leaves a file that does not start with received_at alone, says so once, and counts no lag for it', async () => {
    const dataDir = dir();
    const config = testConfig(dataDir, { NATS_URL: `nats://127.0.0.1:${await freePort()}`, SITE_ID: 'pi', STREAMS: 'data' });
    // A Flask10X-era file the writer has given a state (it would archive it at the next write).
    writeFileSync(join(dataDir, 'data.csv'), 'time,temp\n2020-01-01 00:00:00,21\n');
    mkdirSync(join(dataDir, '.sensor-ingest', 'files'), { recursive: true });
    writeFileSync(join(dataDir, '.sensor-ingest', 'files', 'data.csv.state'), 'v1 0123456789abcdef 1795478663812 0000000000000033\n');
    const { logger, lines } = memoryLogger();
    const forwarder = startForwarder({ config, logger, metrics: createForwardMetrics(new Registry(), config.streams), timing: { pollMs: 20 } });
    onTestFinished(() => forwarder.close());
    await waitFor(() => lines.some((line) => line.msg === 'file does not start with received_at; not forwarded'), 'the WARN');
    // Many passes later, still one WARN and no lag.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lines.filter((line) => line.msg === 'file does not start with received_at; not forwarded')).toHaveLength(1);
    expect(forwarder.lag().get('data') ?? 0).toBe(0);
  });
});

describe('the forwarder and the fsynced length', () => {
  it('never sends a row past the length the writer vouched for as fsynced, and sends it once vouched for', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const dataDir = dir();
    const config = testConfig(dataDir, { NATS_URL: nats.url, SITE_ID: 'pi', STREAMS: 'data' });
    const header = 'received_at,id\n';
    const rows = ['2026-11-23T10:15:00.000Z,r0\n', '2026-11-23T10:15:01.000Z,r1\n', '2026-11-23T10:15:02.000Z,r2\n'];
    writeFileSync(join(dataDir, 'data.csv'), header + rows.join(''));
    // As after a write whose fsync has not returned yet: the third row is in the file, not vouched for.
    const vouched = Buffer.byteLength(header + rows[0] + rows[1]);
    writeFileStateDurably(nodeFs, join(dataDir, 'data.csv'), { id: '0123456789abcdef', created: 1, synced: vouched });
    const { logger } = memoryLogger();
    const forwarder = startForwarder({ config, logger, metrics: createForwardMetrics(new Registry(), config.streams), timing: { pollMs: 20 } });
    onTestFinished(() => forwarder.close());
    const nc = await connect({ servers: nats.url });
    onTestFinished(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const messages = async () => (await jsm.streams.info('SENSORS').catch(() => undefined))?.state.messages;
    await waitFor(async () => (await messages()) === 2 && forwarder.lag().get('data') === 0, 'the two vouched rows sent');
    expect(await messages()).toBe(2);

    writeFileStateDurably(nodeFs, join(dataDir, 'data.csv'), { id: '0123456789abcdef', created: 1, synced: vouched + Buffer.byteLength(rows[2] as string) });
    forwarder.notify();
    await waitFor(async () => (await messages()) === 3, 'the third row once vouched for');
    const third = await jsm.streams.getMessage('SENSORS', { seq: 3 });
    expect(third?.json<{ cells: { id: string } }>().cells.id).toBe('r2');
    expect(third?.header.get('Nats-Msg-Id')).toBe(`pi:0123456789abcdef:${vouched}`);
  });
});
