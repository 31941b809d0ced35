/**
 * The ingest app in process, as main builds it (createApp and its parts), on
 * an inline writer and a fresh registry, logging into memory: for the
 * supertest tiers, which need no build and no child process.
 */
import { type Server, createServer } from 'node:http';
import { once } from 'node:events';
import { Registry } from 'prom-client';
import { afterEach } from 'vitest';
import { createApp } from '../../src/ingest/app.js';
import { type EventHubOptions, createEventHub } from '../../src/ingest/dashboard/event-hub.js';
import { createLivePoints } from '../../src/ingest/dashboard/live-points.js';
import { createHistory } from '../../src/ingest/history.js';
import { createIdempotencyStore } from '../../src/ingest/idempotency.js';
import type { Lifecycle } from '../../src/ingest/lifecycle.js';
import { type DiskSpaceDeps, createDiskSpace } from '../../src/server/disk-space.js';
import { createMetrics } from '../../src/server/metrics.js';
import { listStoredFiles } from '../../src/storage/stream-files.js';
import { createStreamActivity } from '../../src/server/stream-activity.js';
import { type BatchRunner, createInlineRunner } from '../../src/writer/runners.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';
import { memoryLogger } from './logs.js';
import { useTempDir } from './temp-dir.js';
import { testConfig } from './writer.js';

export interface WorldOptions {
  env?: Record<string, string>;
  runner?: BatchRunner;
  now?: () => number;
  /** Node's process metrics in /metrics, as the server has them (off by default: they are slow to collect). */
  defaultMetrics?: boolean;
  /** The dashboard's event hub settings (client cap, keep-alive period). */
  eventHub?: EventHubOptions;
  /** DATA_DIR's file system as statfs sees it (the real one unless given). */
  statfs?: DiskSpaceDeps['statfs'];
}

/** The app as main builds it, on an inline writer and a fresh registry, logging into memory. */
export function buildWorld(
  dataDir: string,
  { env = {}, runner = createInlineRunner(), now = Date.now, defaultMetrics = false, eventHub: hubOptions, statfs }: WorldOptions = {},
) {
  const config = testConfig(dataDir, env);
  const { logger, lines } = memoryLogger();
  const activity = createStreamActivity(config.streams, now);
  const history = createHistory(config.historyMax);
  // Set just below; the metrics read it at scrape time.
  let writer: Writer | undefined = undefined;
  const queueLength = () => writer?.length ?? 0;
  const disk = createDiskSpace({
    dataDir,
    minFreeBytes: config.diskMinFreeBytes,
    logger,
    listFiles: async () => (await listStoredFiles(dataDir, config.streams, now())).map((file) => file.path),
    now,
    watch: false,
    ...(statfs === undefined ? {} : { statfs }),
  });
  const metrics = createMetrics({ registry: new Registry(), config, activity, queueLength, defaultMetrics, disk });
  writer = createWriter({ config, runner, logger, events: metrics.writerEvents });
  const lifecycle: Lifecycle = { closing: false };
  const idempotency = createIdempotencyStore({ windowSec: config.idempotencyWindowSec, maxKeys: config.idempotencyMaxKeys, now });
  const live = createLivePoints({ streams: config.streams, quietAfterSec: config.inactivityWarnSec, now, activity });
  const eventHub = createEventHub(hubOptions);
  const app = createApp({ config, logger, writer, metrics, history, activity, idempotency, lifecycle, live, eventHub, version: '9.9.9', now, disk });
  return { app, writer, metrics, history, activity, idempotency, lines, lifecycle, config, logger, queueLength, live, eventHub, disk };
}

export type World = ReturnType<typeof buildWorld>;

/**
 * For a test file of app tests: a fresh temp dir per test, worlds built in
 * it, apps put on real ports; after each test every port is closed, every
 * writer closed and the dir removed.
 */
export function setUpWorlds(): {
  readonly dir: string;
  readonly writer: Writer;
  world: (options?: WorldOptions) => World;
  /** The world's app on a free loopback port (for what needs a socket: event streams, raw request paths). */
  listen: (world: World) => Promise<{ url: string; port: number }>;
} {
  const dir = useTempDir();
  const built: World[] = [];
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      server.close();
    }
    for (const { writer, eventHub } of built.splice(0)) {
      eventHub.close();
      await writer.close();
    }
  });
  return {
    get dir() {
      return dir.path;
    },
    get writer() {
      const last = built.at(-1);
      if (last === undefined) throw new Error('no world built in this test yet');
      return last.writer;
    },
    world: (options = {}) => {
      const world = buildWorld(dir.path, options);
      built.push(world);
      return world;
    },
    listen: async (world) => {
      const server = createServer(world.app);
      servers.push(server);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      return { url: `http://127.0.0.1:${address.port}`, port: address.port };
    },
  };
}
