/**
 * The edge (writer and forwarder) and the collector in this process, as
 * their programs build them, on inline writers: their timing and log lines
 * are the test's to read.
 */
import { Registry } from 'prom-client';
import { onTestFinished } from 'vitest';
import { createCollectorApp } from '../../src/collector/app.js';
import { startCollector, trackFileEnds } from '../../src/collector/consumer.js';
import { openCollectJournal } from '../../src/collector/journal.js';
import { createCollectMetrics } from '../../src/collector/metrics.js';
import { createDiskSpace } from '../../src/server/disk-space.js';
import { createMetrics } from '../../src/server/metrics.js';
import { createStreamActivity } from '../../src/server/stream-activity.js';
import { type ForwarderDeps, startForwarder } from '../../src/forwarder/forwarder.js';
import { createForwardMetrics } from '../../src/forwarder/metrics.js';
import { createInlineRunner } from '../../src/writer/runners.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';
import { memoryLogger } from './logs.js';
import { testConfig } from './writer.js';

/** Starts a collector on `natsUrl` writing into `dataDir`, consuming as `consumer`; `env` adds settings. */
export function collectorOn(natsUrl: string, dataDir: string, consumer: string, env: Record<string, string> = {}) {
  const config = testConfig(dataDir, { NATS_URL: natsUrl, COLLECT_CONSUMER: consumer, ...env });
  const { logger, lines } = memoryLogger();
  const registry = new Registry();
  // Set just below; the metrics read it at scrape time.
  let writer: Writer | undefined = undefined;
  const disk = createDiskSpace({ dataDir, minFreeBytes: config.diskMinFreeBytes, logger, listFiles: () => Promise.resolve([]), now: Date.now, watch: false });
  const metrics = createMetrics({ registry, config: { ...config, streams: [] }, activity: createStreamActivity([], Date.now), queueLength: () => writer?.length ?? 0, disk });
  const ends = trackFileEnds();
  writer = createWriter({ config, runner: createInlineRunner(), logger, events: ends });
  const journal = openCollectJournal(dataDir);
  const collector = startCollector({
    config,
    logger,
    writer,
    journal,
    metrics: createCollectMetrics(registry),
    takeEnds: ends.take,
    stateLost: ends.lost,
    fatal: (message) => {
      throw new Error(message);
    },
  });
  const app = createCollectorApp({ version: '9.9.9', logger, dataDir, disk, readToken: undefined, writer, metrics, natsCheck: () => ({ ok: collector.connected }) });
  const stop = async () => {
    await collector.close();
    await writer.close();
    journal.close();
  };
  return { collector, registry, lines, logger, app, stop, config };
}

/** An edge in `dataDir`: a writer whose commits wake a forwarder; both closed when the test finishes. */
export function edgeOn(dataDir: string, env: Record<string, string>, timing?: ForwarderDeps['timing']) {
  const config = testConfig(dataDir, env);
  const { logger, lines } = memoryLogger();
  const registry = new Registry();
  const forwarder = startForwarder({ config, logger, metrics: createForwardMetrics(registry, config.streams), ...(timing === undefined ? {} : { timing }) });
  onTestFinished(() => forwarder.close());
  const writer = createWriter({ config, runner: createInlineRunner(), logger, events: { fileWritten: () => forwarder.notify() } });
  onTestFinished(() => writer.close());
  return { config, logger, lines, registry, forwarder, writer };
}
