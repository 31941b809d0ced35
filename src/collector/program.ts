/**
 * The collector as a program for the process runner (`npm run collect`, SPEC
 * section 10): the same config, logger, metrics and writer as the ingest
 * server; rows come from a JetStream consumer instead of HTTP, and go to
 * `DATA_DIR/<site>/<stream>.csv`.
 *
 * lock DATA_DIR → cut rows the journal does not cover → writer → consumer →
 * the app; SIGTERM/SIGINT: finish the batch in hand (written, journaled,
 * acked), drain, exit 0.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import * as nodeFs from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { NAME } from '../shared/names.js';
import { createDiskSpace } from '../server/disk-space.js';
import { createMetrics } from '../server/metrics.js';
import { createCompression } from '../server/compression.js';
import { createRetention } from '../server/retention.js';
import type { Program, ProgramContext, StartedProgram } from '../server/process.js';
import { createStreamActivity } from '../server/stream-activity.js';
import type { Config } from '../shared/config.js';
import { settledWithin } from '../shared/deadline.js';
import { STATE_DIR, stateDirOf } from '../storage/file-state.js';
import { lockForCommit, lockWaitingForHolder, takeProcessLock } from '../storage/lock.js';
import { createThreadRunner } from '../writer/runners.js';
import { createWriter } from '../writer/writer.js';
import { createCollectorApp } from './app.js';
import { listCentralFiles } from './central-files.js';
import { startCollector, trackFileEnds } from './consumer.js';
import { isJournaledWhole, journalPathOf, openCollectJournal } from './journal.js';
import { createCollectMetrics } from './metrics.js';
import { cutUnjournaledRows } from './repair.js';

export const collectorProgram: Program = {
  name: 'sensor-ingest-collect',
  startedMessage: 'sensor-ingest collector started',
  /**
   * Where the collector's defaults differ from the ingest server's: its own port, and its own
   * data and log folders, so that both can run from one checkout. Two processes must not roll
   * one set of log files, and the collector's DATA_DIR is its own.
   */
  defaults: { PORT: '8889', DATA_DIR: './central', LOG_DIR: './logs/collect' },
  checkConfig: (config: Config) =>
    config.natsUrl === undefined ? ["NATS_URL='' is not accepted: the collector needs a comma list of nats://[user:pass@]host:port addresses"] : [],
  start: startCollecting,
};

async function startCollecting({ config, logger, version, startedAt, fail, fatal }: ProgramContext): Promise<StartedProgram> {
  // One collector a DATA_DIR: a second one's start-up cut would remove rows the first has not journaled yet.
  mkdirSync(join(config.dataDir, STATE_DIR), { recursive: true });
  try {
    // A killed collector's lock goes stale after 5 s: a restart by systemd waits that out.
    await takeProcessLock(join(config.dataDir, STATE_DIR, 'collector'), { staleMs: 5_000, retries: 12, onLost: () => {} });
  } catch (error) {
    fail(`another collector runs on DATA_DIR '${config.dataDir}' (${(error as { code?: string }).code ?? (error as Error).message})`);
  }
  // Without its journal, start-up would cut every central file back to its header: refuse instead.
  if (!existsSync(journalPathOf(config.dataDir)) && hasCentralFiles(config.dataDir)) {
    fail(`DATA_DIR '${config.dataDir}' holds central files but no ${journalPathOf(config.dataDir)}; restore it, or move the files away`);
  }
  const journal = openCollectJournal(config.dataDir);
  const cuts = await cutUnjournaledRows({ dataDir: config.dataDir, journal, fs: nodeFs, lock: lockWaitingForHolder, now: Date.now });
  for (const cut of cuts) logger.warn({ file: cut.file, bytes: cut.bytes }, 'cut rows written but not journaled; they come again');

  const registry = new Registry();
  const queueLength = (): number => writer.length;
  const disk = createDiskSpace({ dataDir: config.dataDir, minFreeBytes: config.diskMinFreeBytes, logger, listFiles: async () => (await listCentralFiles(config.dataDir, Date.now())).map((file) => file.path), now: Date.now });
  const metrics = createMetrics({ registry, config: { ...config, streams: [] }, activity: createStreamActivity([], Date.now), queueLength, disk });
  const collectMetrics = createCollectMetrics(registry);
  const ends = trackFileEnds();
  const writer = createWriter({
    config,
    runner: createThreadRunner(),
    logger,
    events: {
      ...metrics.writerEvents,
      fileWritten(outcome) {
        metrics.writerEvents.fileWritten?.(outcome);
        ends.fileWritten(outcome);
        // A new archive is compressed at once rather than at the next minute's pass (compression is set by then).
        if (outcome.archivedAs !== undefined) void compression.run();
      },
    },
  });

  // SPEC section 12: the same retention as at the edge; the journal keeps every id, so a re-sent row of a removed file is still skipped.
  const retention = createRetention({
    rules: { days: config.retentionDays, maxBytes: config.retentionMaxBytes },
    logger,
    now: Date.now,
    listFiles: () => listCentralFiles(config.dataDir, Date.now()),
    safe: () => true,
    // Waits out a holder, and takes over a lock a killed process left once it is stale (10 s).
    lock: lockWaitingForHolder,
    onRemoved: (reason, bytes) => metrics.retentionRemoved(reason, bytes),
  });
  const compression = createCompression({
    enabled: config.compressClosed === 'gzip',
    logger,
    listFiles: () => listCentralFiles(config.dataDir, Date.now()),
    // Only once the journal holds every row of it (see isJournaledWhole).
    safe: (path) => isJournaledWhole(journal, path),
    lock: lockForCommit,
    onCompressed: () => metrics.fileCompressed(),
  });
  const collector = startCollector({ config, logger, writer, journal, metrics: collectMetrics, takeEnds: ends.take, stateLost: ends.lost, fatal });

  const app = createCollectorApp({
    version,
    logger,
    dataDir: config.dataDir,
    disk,
    readToken: config.readToken,
    writer,
    metrics,
    startedAt,
    natsCheck: () => ({ ok: collector.connected, connected: collector.connected }),
  });

  async function stop(signal: NodeJS.Signals, server: Server, left: () => number): Promise<0 | 1> {
    logger.info({ signal }, 'collector stopping');
    disk.close();
    retention.close();
    await compression.close();
    // The batch in hand first, then what the writer still holds.
    await collector.close(left());
    const unwritten = await writer.drain(left());
    server.close();
    server.closeAllConnections();
    if (unwritten > 0) {
      // Not acked, so JetStream hands these rows out again to the next collector. The journal
      // stays open: a stalled write that ends before the exit still journals its rows.
      logger.error({ rows: unwritten, writer_blocked: writer.writing }, 'shutdown timed out with rows not written');
      return 1;
    }
    await settledWithin(writer.close(), left());
    journal.close();
    logger.info({ signal }, 'stopped');
    return 0;
  }

  return { app, writer, stop, startedFields: { journal: journal.size() } };
}

/** Whether any site folder holds CSV files the writer keeps a state for. */
function hasCentralFiles(dataDir: string): boolean {
  return readdirSync(dataDir, { withFileTypes: true }).some((entry) => {
    if (!entry.isDirectory() || !NAME.test(entry.name)) return false;
    try {
      return readdirSync(stateDirOf(join(dataDir, entry.name))).length > 0;
    } catch {
      return false;
    }
  });
}

