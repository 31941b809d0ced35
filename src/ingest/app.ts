/**
 * `createApp(deps)`: the Express app, built from injected parts and never
 * listening itself (src/main.ts binds the port). Tests drive it with supertest.
 */
import type { Logger } from 'pino';
import express, { type Express, type RequestHandler } from 'express';
import type { Config } from '../shared/config.js';
import type { EventHub } from './dashboard/event-hub.js';
import { createLiveFeed } from './dashboard/live-feed.js';
import type { LivePoints } from './dashboard/live-points.js';
import { ShuttingDownError } from '../shared/errors.js';
import { noRoute, renderErrors } from '../server/errors.js';
import type { History } from './history.js';
import type { Lifecycle } from './lifecycle.js';
import type { Metrics } from '../server/metrics.js';
import { createDashboardRouter } from './routes/dashboard.js';
import { createHistoryRouter } from './routes/history.js';
import { createMetricsRouter } from '../server/metrics-route.js';
import type { StreamActivity } from '../server/stream-activity.js';
import type { IdempotencyStore } from './idempotency.js';
import { createIngestRoutes, unknownStream } from './routes/ingest.js';
import { createIngestPipeline } from './routes/ingest-pipeline.js';
import { createLineProtocolRouter } from './routes/line-protocol.js';
import { type OpsDeps, createOpsRouter } from '../server/health-routes.js';
import { createStreamsRouter } from './routes/streams.js';
import { createRequestObserver } from '../server/request-log.js';
import { createSecurityHeaders } from '../server/security-headers.js';
import type { Writer } from '../writer/writer.js';

export interface AppDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly writer: Writer;
  readonly metrics: Metrics;
  readonly history: History;
  readonly activity: StreamActivity;
  readonly idempotency: IdempotencyStore;
  readonly lifecycle: Lifecycle;
  /** The dashboard's memory of each stream's recent readings. */
  readonly live: LivePoints;
  /** The dashboard's Server-Sent Events clients. */
  readonly eventHub: EventHub;
  readonly version: string;
  /** DATA_DIR's disk, for /readyz. */
  readonly disk: OpsDeps['disk'];
  readonly now?: () => number;
  readonly startedAt?: number;
  /** More `/readyz` checks, such as the forwarder's. */
  readonly readyChecks?: OpsDeps['readyChecks'];
}

export function createApp(deps: AppDeps): Express {
  const { config, writer, lifecycle, metrics, history, activity, live, eventHub } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: 'http' });
  const app = express();
  app.disable('x-powered-by');
  // Answers are tiny and never cached: an ETag would cost a SHA-1 per request.
  app.set('etag', false);
  app.set('trust proxy', config.trustProxy ?? false);

  const securityHeaders = createSecurityHeaders();
  const observer = createRequestObserver(log, metrics);
  // Ingest first: it is nearly all of the traffic. Its routes set the security
  // headers, observe the request, and refuse requests while closing themselves.
  const onRowsAccepted = createLiveFeed({ live, eventHub, logger: deps.logger });
  const pipeline = createIngestPipeline({
    config,
    writer,
    lifecycle,
    metrics,
    history,
    activity,
    idempotency: deps.idempotency,
    now,
    onRowsAccepted,
    observer,
    securityHeaders,
  });
  const ingest = createIngestRoutes(pipeline, config.streams, config, now);
  app.all(ingest.paths, ingest.handler);
  app.use(createLineProtocolRouter(pipeline, config.maxBatchRows, now));
  // Security headers on every other answer, errors included (src/server/security-headers.ts).
  app.use(securityHeaders.middleware);
  app.use(observer.middleware);
  app.use(refuseWhileClosing(lifecycle, writer));
  app.use(
    createOpsRouter({
      version: deps.version,
      dataDir: config.dataDir,
      disk: deps.disk,
      writer,
      now,
      startedAt: deps.startedAt ?? now(),
      ...(deps.readyChecks === undefined ? {} : { readyChecks: deps.readyChecks }),
    }),
  );
  app.use(createMetricsRouter(metrics, config.readToken));
  app.use(createHistoryRouter({ history, activity, historyMax: config.historyMax, readToken: config.readToken, now }));
  app.use(createDashboardRouter({ live, eventHub, readToken: config.readToken }));
  app.use(createStreamsRouter({ dataDir: config.dataDir, streams: config.streams, activity, readToken: config.readToken }));
  app.all('/:stream', ...unknownStream(config));
  app.use(noRoute);
  app.use(renderErrors(log));
  return app;
}

/** SPEC section 7: once shutdown begins, requests that still arrive get a fast 503. */
function refuseWhileClosing(lifecycle: Lifecycle, writer: Writer): RequestHandler {
  return (_req, res, next) => {
    if (!lifecycle.closing) return next();
    res.set('Connection', 'close');
    next(new ShuttingDownError(writer.retryAfterSec()));
  };
}
