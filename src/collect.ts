/**
 * The collector's entry point (`npm run collect`, SPEC section 10): the same
 * config, logger, metrics and writer as the ingest server; rows come from a
 * JetStream consumer instead of HTTP, and go to `DATA_DIR/<site>/<stream>.csv`.
 *
 * loadConfig (PORT default 8889; NATS_URL required) → logger → cut rows the
 * journal does not cover → writer → consumer → listen; SIGTERM/SIGINT: finish
 * the batch in hand (written, journaled, acked), drain, exit 0.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import * as nodeFs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createCollectorApp } from './collector/app.js';
import { type Config, ConfigError, loadConfig, redactConfig } from './shared/config.js';
import { createHttpServer } from './server/http-server.js';
import { createLogger } from './shared/logger.js';
import { createMetrics } from './server/metrics.js';
import { journalPathOf, openCollectJournal } from './collector/journal.js';
import { createCollectMetrics } from './collector/metrics.js';
import { cutUnjournaledRows } from './collector/repair.js';
import { startCollector, trackFileEnds } from './collector/consumer.js';
import { createStreamActivity } from './server/stream-activity.js';
import { deadlineIn, settledWithin } from './shared/deadline.js';
import { exitProcess } from './shared/process-exit.js';
import { NAME } from './nats/row-message.js';
import { STATE_DIR, stateDirOf } from './storage/file-state.js';
import { createThreadRunner } from './writer/runners.js';
import { lockWaitingForHolder, takeProcessLock } from './storage/lock.js';
import { createWriter } from './writer/writer.js';

const EXIT_CONFIG = 78;
const LOG_FLUSH_DEADLINE_MS = 2_000;

function fail(message: string, code = 1): never {
  process.stderr.write(`sensor-ingest-collect: ${message}\n`);
  process.exit(code);
}

/**
 * Where the collector's defaults differ from the ingest server's: its own port, and its own
 * data and log folders, so that both can run from one checkout. Two processes must not roll
 * one set of log files, and the collector's DATA_DIR is its own.
 */
const COLLECTOR_DEFAULTS = { PORT: '8889', DATA_DIR: './central', LOG_DIR: './logs/collect' } as const;

function readConfig(): Config {
  let config: Config;
  try {
    config = loadConfig(process.env, { hostname: hostname(), defaults: COLLECTOR_DEFAULTS });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`sensor-ingest-collect: ${problem}\n`);
    process.exit(EXIT_CONFIG);
  }
  if (config.natsUrl === undefined) {
    process.stderr.write("sensor-ingest-collect: NATS_URL='' is not accepted: the collector needs a comma list of nats://[user:pass@]host:port addresses\n");
    process.exit(EXIT_CONFIG);
  }
  return config;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const config = readConfig();
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  try {
    mkdirSync(config.dataDir, { recursive: true });
    mkdirSync(config.logDir, { recursive: true });
  } catch (error) {
    fail(`DATA_DIR or LOG_DIR cannot be used: ${(error as Error).message}`);
  }
  const { logger, flush: flushLog } = await createLogger(config);

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
  const metrics = createMetrics({ registry, config: { ...config, streams: [] }, activity: createStreamActivity([], Date.now), queueLength });
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
      },
    },
  });

  let stopping = false;
  const collector = startCollector({
    config,
    logger,
    writer,
    journal,
    metrics: collectMetrics,
    takeEnds: ends.take,
    stateLost: ends.lost,
    fatal: (message) => {
      logger.fatal(message);
      void flushLog(LOG_FLUSH_DEADLINE_MS).then(() => process.exit(1));
    },
  });

  const app = createCollectorApp({
    version,
    logger,
    dataDir: config.dataDir,
    readToken: config.readToken,
    writer,
    metrics,
    startedAt,
    natsCheck: () => ({ ok: collector.connected, connected: collector.connected }),
  });
  // SPEC section 11's slow-client limits hold for the collector's port too.
  const server = createHttpServer(app);
  await new Promise<void>((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => fail(`cannot listen on ${config.host}:${config.port}: ${error.message} (${error.code ?? 'error'})`));
    server.listen(config.port, config.host, () => resolve());
  });
  process.send?.('ready');
  logger.info({ version, port: config.port, config: redactConfig(config), journal: journal.size() }, 'sensor-ingest collector started');

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      // One deadline for every step (SPEC section 7): the batch in hand, then what the writer still holds.
      const left = deadlineIn(config.shutdownTimeoutSec * 1000);
      logger.info({ signal }, 'collector stopping');
      await collector.close(left());
      const unwritten = await writer.drain(left());
      server.close();
      server.closeAllConnections();
      if (unwritten > 0) {
        // Not acked, so JetStream hands these rows out again to the next collector. The journal
        // stays open: a stalled write that ends before the exit still journals its rows.
        logger.error({ rows: unwritten, writer_blocked: writer.writing }, 'shutdown timed out with rows not written');
      } else {
        await settledWithin(writer.close(), left());
        journal.close();
        logger.info({ signal }, 'stopped');
      }
      await flushLog(LOG_FLUSH_DEADLINE_MS);
      exitProcess(unwritten > 0 ? 1 : 0, writer);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
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

main().catch((error: unknown) => {
  fail(`start-up failed: ${((error as Error).message ?? String(error)).split('\n')[0]}`);
});
