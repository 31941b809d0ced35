/**
 * The entry point, and the only module that touches the process:
 * loadConfig → logger → data dir check → repair → writer → createApp → listen,
 * and the shutdown that drains the writer on SIGTERM or SIGINT.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as nodeFs from 'node:fs';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createApp } from './ingest/app.js';
import { type EventHub, createEventHub } from './ingest/dashboard/event-hub.js';
import { createLivePoints } from './ingest/dashboard/live-points.js';
import { restoreRecentPoints } from './ingest/dashboard/restore-points.js';
import { deadlineIn, settledWithin } from './shared/deadline.js';
import { createHistory } from './ingest/history.js';
import { createIdempotencyStore } from './ingest/idempotency.js';
import type { Lifecycle } from './ingest/lifecycle.js';
import { createLogger } from './shared/logger.js';
import { exitProcess } from './shared/process-exit.js';
import { createMetrics } from './server/metrics.js';
import { createMonitor } from './ingest/monitor.js';
import { createStreamActivity } from './server/stream-activity.js';
import { type Config, ConfigError, loadConfig, redactConfig } from './shared/config.js';
import { createHttpServer } from './server/http-server.js';
import type { Forwarder } from './forwarder/forwarder.js';
import { repairCurrentFiles } from './storage/repair.js';
import { createThreadRunner } from './writer/runners.js';
import { lockWaitingForHolder } from './storage/lock.js';
import { type Writer, createWriter } from './writer/writer.js';

/** sysexits.h EX_CONFIG: the exit code SPEC section 2 gives a bad configuration. */
const EXIT_CONFIG = 78;
/** The last log lines get this long to reach stdout and LOG_DIR before exit (a stuck log disk must not hold the exit up). */
const LOG_FLUSH_DEADLINE_MS = 2_000;

function fail(message: string, code = 1): never {
  process.stderr.write(`sensor-ingest: ${message}\n`);
  process.exit(code);
}

function readConfig(): Config {
  try {
    return loadConfig(process.env, { hostname: hostname() });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`sensor-ingest: ${problem}\n`);
    process.exit(EXIT_CONFIG);
  }
}

/** Creates DATA_DIR and LOG_DIR and proves DATA_DIR takes a file, or exits 1 with one line. */
function prepareDirectories(config: Config): void {
  try {
    mkdirSync(config.dataDir, { recursive: true });
    const probe = join(config.dataDir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (error) {
    fail(`DATA_DIR '${config.dataDir}' cannot be used: ${(error as Error).message}`);
  }
  try {
    mkdirSync(config.logDir, { recursive: true });
  } catch (error) {
    fail(`LOG_DIR '${config.logDir}' cannot be used: ${(error as Error).message}`);
  }
}

function listen(server: Server, config: Config): Promise<void> {
  return new Promise((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EADDRINUSE' ? 'the port is already in use' : error.message;
      fail(`cannot listen on ${config.host}:${config.port}: ${why} (${error.code ?? 'error'})`);
    });
    server.listen(config.port, config.host, () => resolve());
  });
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const config = readConfig();
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  prepareDirectories(config);
  const { logger, flush: flushLog } = await createLogger(config);

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
  const live = createLivePoints({ streams: config.streams, quietAfterSec: config.inactivityWarnSec, now: Date.now });
  const restored = await restoreRecentPoints({ dataDir: config.dataDir, streams: config.streams, live, now: Date.now });
  for (const { file, error } of restored.unreadable) logger.warn({ file, err: error }, 'dashboard could not read file');
  logger.info({ rows: restored.rows, bytes: restored.bytes }, 'dashboard points restored');
  const eventHub = createEventHub();

  const activity = createStreamActivity(config.streams, Date.now);
  const history = createHistory(config.historyMax);
  const queueLength = (): number => writer.length;
  const registry = new Registry();
  const metrics = createMetrics({ registry, config, activity, queueLength });
  // SPEC section 10: with NATS_URL set, committed rows also go to JetStream, read back from the files.
  // The NATS client is loaded only then: without it, a Pi that does not forward saves its memory and start-up time.
  const forwarder = config.natsUrl === undefined ? undefined : await startForwarding(config, logger, registry);
  const writerEvents = {
    ...metrics.writerEvents,
    fileWritten: (outcome: Parameters<NonNullable<typeof metrics.writerEvents.fileWritten>>[0]) => {
      metrics.writerEvents.fileWritten?.(outcome);
      forwarder?.notify();
    },
  };
  const writer = createWriter({ config, runner: createThreadRunner({ boundaries }), logger, events: writerEvents });
  const monitor = createMonitor({ config, logger, activity, queueLength, now: Date.now });
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
    ...(forwarder === undefined ? {} : { readyChecks: () => ({ forward: forwardCheck(forwarder) }) }),
  });
  // Slow senders: a request must arrive whole within 30 s, its headers within 10 s, and
  // the 408 come on time (Node's defaults let a slow-loris hold sockets for long on a Pi).
  const server = createHttpServer(app);
  await listen(server, config);
  // Under PM2 (wait_ready), this tells it the server is serving.
  process.send?.('ready');
  const address = server.address();
  logger.info(
    { version, port: typeof address === 'object' && address !== null ? address.port : config.port, config: redactConfig(config) },
    'sensor-ingest started',
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    monitor.close();
    void shutdown({ signal, server, writer, forwarder, eventHub, lifecycle, logger, flushLog, timeoutMs: config.shutdownTimeoutSec * 1000 });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

interface ShutdownDeps {
  readonly signal: NodeJS.Signals;
  readonly server: Server;
  readonly writer: Writer;
  readonly forwarder: Forwarder | undefined;
  readonly eventHub: EventHub;
  readonly lifecycle: Lifecycle;
  readonly logger: Logger;
  readonly flushLog: (deadlineMs: number) => Promise<void>;
  readonly timeoutMs: number;
}

/**
 * SPEC section 7: stop accepting, answer 503 to what still arrives, finish
 * requests in flight, write everything queued, exit 0; past the deadline log
 * the rows left and exit 1.
 */
async function shutdown({ signal, server, writer, forwarder, eventHub, lifecycle, logger, flushLog, timeoutMs }: ShutdownDeps): Promise<void> {
  const left = deadlineIn(timeoutMs);
  lifecycle.closing = true;
  // Open dashboards' event streams never end by themselves: server.close() would wait for them.
  eventHub.close();
  logger.info({ signal, rows: writer.length }, 'shutting down');

  // Flush now, ignoring COMMIT_INTERVAL_MS: durable requests in flight wait
  // for this, and the server cannot close until they are answered.
  void writer.drain(timeoutMs);
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
    await flushLog(LOG_FLUSH_DEADLINE_MS);
    exitProcess(1, writer);
  }
  await writer.close();
  logger.info({ signal }, 'stopped');
  await flushLog(LOG_FLUSH_DEADLINE_MS);
  process.exit(0);
}

async function startForwarding(config: Config, logger: Logger, registry: Registry): Promise<Forwarder> {
  const [{ startForwarder }, { createForwardMetrics }] = await Promise.all([import('./forwarder/forwarder.js'), import('./forwarder/metrics.js')]);
  return startForwarder({ config, logger, metrics: createForwardMetrics(registry, config.streams) });
}

/** Forwarding never makes the server unready (ingest does not depend on it); the check shows how it goes. */
function forwardCheck(forwarder: Forwarder): { ok: true; connected: boolean; forwarding: boolean; lag_rows: number } {
  const lagRows = [...forwarder.lag().values()].reduce((sum, rows) => sum + rows, 0);
  return { ok: true, connected: forwarder.connected, forwarding: forwarder.holdsLock, lag_rows: lagRows };
}

main().catch((error: unknown) => {
  const { message, code } = error as { message?: string; code?: string };
  fail(`start-up failed: ${(message ?? String(error)).split('\n')[0]}${code === undefined || message?.includes(code) ? '' : ` (${code})`}`);
});
