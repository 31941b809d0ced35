/**
 * The ingest server as a program for the process runner (server/process.ts):
 * repair the current files → restore the dashboard's points → writer and
 * forwarder → the app; and the shutdown of SPEC section 7 that drains the
 * writer on SIGTERM or SIGINT.
 */
import * as nodeFs from 'node:fs';
import type { Server } from 'node:http';
import { basename } from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Forwarder } from '../forwarder/forwarder.js';
import { createDiskSpace } from '../server/disk-space.js';
import { createMetrics } from '../server/metrics.js';
import { createCompression } from '../server/compression.js';
import { createRetention } from '../server/retention.js';
import type { Program, ProgramContext, StartedProgram } from '../server/process.js';
import { createStreamActivity } from '../server/stream-activity.js';
import type { Config } from '../shared/config.js';
import { settledWithin } from '../shared/deadline.js';
import { lockForCommit, lockWaitingForHolder } from '../storage/lock.js';
import { repairCurrentFiles } from '../storage/repair.js';
import { type ListedFile, listStoredFiles } from '../storage/stream-files.js';
import { createThreadRunner } from '../writer/runners.js';
import { createWriter } from '../writer/writer.js';
import { createApp } from './app.js';
import { createEventHub } from './dashboard/event-hub.js';
import { createLivePoints } from './dashboard/live-points.js';
import { restoreRecentPoints } from './dashboard/restore-points.js';
import { createHistory } from './history.js';
import { createIdempotencyStore } from './idempotency.js';
import type { Lifecycle } from './lifecycle.js';
import { createMonitor } from './monitor.js';

export const ingestProgram: Program = {
  name: 'sensor-ingest',
  startedMessage: 'sensor-ingest started',
  start: startIngest,
};

async function startIngest({ config, logger, version, startedAt }: ProgramContext): Promise<StartedProgram> {
  const { repairs, boundaries } = await repairCurrentFiles({
    dataDir: config.dataDir,
    streams: config.streams,
    rotate: config.csvRotate,
    fs: nodeFs,
    lock: lockWaitingForHolder,
    now: Date.now,
  });
  for (const repair of repairs) {
    logger.warn({ file: repair.fileName, partial: repair.partialFile, bytes: repair.bytes }, 'repaired cut row');
  }

  // The dashboard's charts start from the tails of the files, so they survive a restart.
  // One source of "last received" for /streams, /history, /metrics, the dashboard and the monitor.
  const activity = createStreamActivity(config.streams, Date.now);
  const live = createLivePoints({ streams: config.streams, quietAfterSec: config.inactivityWarnSec, now: Date.now, activity });
  const restored = await restoreRecentPoints({ dataDir: config.dataDir, streams: config.streams, live, activity, now: Date.now });
  for (const { file, error } of restored.unreadable) logger.warn({ file, err: error }, 'dashboard could not read file');
  logger.info({ rows: restored.rows, bytes: restored.bytes }, 'dashboard points restored');
  const eventHub = createEventHub();

  const history = createHistory(config.historyMax);
  const queueLength = (): number => writer.length;
  const registry = new Registry();
  const disk = createDiskSpace({
    dataDir: config.dataDir,
    minFreeBytes: config.diskMinFreeBytes,
    logger,
    listFiles: async () => (await listStoredFiles(config.dataDir, config.streams, Date.now())).map((file) => file.path),
    now: Date.now,
  });
  const metrics = createMetrics({ registry, config, activity, queueLength, disk });
  // SPEC section 10: with NATS_URL set, committed rows also go to JetStream, read back from the files.
  // The NATS client is loaded only then: without it, a Pi that does not forward saves its memory and start-up time.
  const forwarder = config.natsUrl === undefined ? undefined : await startForwarding(config, logger, registry);
  const writerEvents = {
    ...metrics.writerEvents,
    fileWritten: (outcome: Parameters<NonNullable<typeof metrics.writerEvents.fileWritten>>[0]) => {
      metrics.writerEvents.fileWritten?.(outcome);
      forwarder?.notify();
      // A new archive is compressed at once rather than at the next minute's pass (compression is set by then).
      if (outcome.archivedAs !== undefined) void compression.run();
    },
  };
  const writer = createWriter({ config, runner: createThreadRunner({ boundaries }), logger, events: writerEvents });
  const monitor = createMonitor({ config, logger, activity, queueLength, now: Date.now });
  const listFiles = (): Promise<ListedFile[]> => listStoredFiles(config.dataDir, config.streams, Date.now());
  // With forwarding on, a file is compressed or removed only once JetStream has every row of it (SPEC section 12).
  const safe = (path: string): boolean => forwarder === undefined || forwarder.forwarded(basename(path));
  const retention = createRetention({
    rules: { days: config.retentionDays, maxBytes: config.retentionMaxBytes },
    logger,
    now: Date.now,
    listFiles,
    safe,
    // Waits out a holder, and takes over a lock a killed process left once it is stale (10 s).
    lock: lockWaitingForHolder,
    onRemoved: (reason, bytes) => metrics.retentionRemoved(reason, bytes),
  });
  const compression = createCompression({
    enabled: config.compressClosed === 'gzip',
    logger,
    listFiles,
    safe,
    lock: lockForCommit,
    onCompressed: () => metrics.fileCompressed(),
  });
  const lifecycle: Lifecycle = { closing: false };
  const idempotency = createIdempotencyStore({ windowSec: config.idempotencyWindowSec, maxKeys: config.idempotencyMaxKeys, now: Date.now });
  const app = createApp({
    config,
    logger,
    writer,
    metrics,
    history,
    activity,
    idempotency,
    lifecycle,
    live,
    eventHub,
    version,
    startedAt,
    disk,
    ...(forwarder === undefined ? {} : { readyChecks: () => ({ forward: forwardCheck(forwarder) }) }),
  });

  /**
   * SPEC section 7: stop accepting, answer 503 to what still arrives, finish
   * requests in flight, write everything queued, exit 0; past the deadline log
   * the rows left and exit 1.
   */
  async function stop(signal: NodeJS.Signals, server: Server, left: () => number): Promise<0 | 1> {
    monitor.close();
    disk.close();
    retention.close();
    // A compression under way is abandoned (its plain file stays), so its lock is not left behind.
    await compression.close();
    lifecycle.closing = true;
    // Open dashboards' event streams never end by themselves: server.close() would wait for them.
    eventHub.close();
    logger.info({ signal, rows: writer.length }, 'shutting down');

    // Flush now, ignoring COMMIT_INTERVAL_MS: durable requests in flight wait
    // for this, and the server cannot close until they are answered.
    void writer.drain(left());
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Keep-alive connections that finish a request after close() began would stay open.
    const idleCloser = setInterval(() => server.closeIdleConnections(), 50);
    server.closeIdleConnections();
    await settledWithin(closed, left());
    clearInterval(idleCloser);

    const unwritten = await writer.drain(left());
    // Rows not yet acknowledged by JetStream wait in the files for the next start.
    if (forwarder !== undefined) await settledWithin(forwarder.close(), left());
    if (unwritten > 0) {
      logger.error({ rows: unwritten, writer_blocked: writer.writing }, 'shutdown timed out with rows not written');
      return 1;
    }
    await writer.close();
    logger.info({ signal }, 'stopped');
    return 0;
  }

  return { app, writer, stop };
}

async function startForwarding(config: Config, logger: Logger, registry: Registry): Promise<Forwarder> {
  const [{ startForwarder }, { createForwardMetrics }] = await Promise.all([import('../forwarder/forwarder.js'), import('../forwarder/metrics.js')]);
  return startForwarder({ config, logger, metrics: createForwardMetrics(registry, config.streams) });
}

/** Forwarding never makes the server unready (ingest does not depend on it); the check shows how it goes. */
function forwardCheck(forwarder: Forwarder): { ok: true; connected: boolean; forwarding: boolean; lag_rows: number } {
  const lagRows = [...forwarder.lag().values()].reduce((sum, rows) => sum + rows, 0);
  return { ok: true, connected: forwarder.connected, forwarding: forwarder.holdsLock, lag_rows: lagRows };
}

