/**
 * `createApp(deps)`: the Express app, built from injected parts and never
 * listening itself (src/main.ts binds the port). Tests drive it with supertest.
 */
import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { answeredStatus } from './answered-status.js';
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
import { createIngestRouter, unknownStream } from './routes/ingest.js';
import { createIngestPipeline } from './routes/ingest-pipeline.js';
import { createLineProtocolRouter } from './routes/line-protocol.js';
import { type OpsDeps, createOpsRouter } from '../server/health-routes.js';
import { createStreamsRouter } from './routes/streams.js';
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

  // Security headers on every answer, errors included. The pages have no
  // inline script, so helmet's default Content-Security-Policy fits them, but
  // for upgrade-insecure-requests: the server speaks plain HTTP on the LAN,
  // and browsers would fetch the dashboard's script over https and fail
  // (https://github.com/helmetjs/helmet/issues/480).
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
  app.use(observeRequests(log, metrics));
  // Ingest first: it is nearly all of the traffic (it refuses requests itself while closing).
  const onRowsAccepted = createLiveFeed({ live, eventHub, logger: deps.logger });
  const pipeline = createIngestPipeline({ config, writer, lifecycle, metrics, history, activity, idempotency: deps.idempotency, now, onRowsAccepted });
  app.use(createIngestRouter(pipeline, config.streams, config, now));
  app.use(createLineProtocolRouter(pipeline, config.maxBatchRows, now));
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

/**
 * One log line and one metrics observation per request. The route label is
 * the route's pattern (an ingest stream's path, a fixed path) or `unmatched`,
 * never the raw URL, so random paths cannot grow the label set.
 */
function observeRequests(log: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    // 'close' comes for every request, answered or aborted by the client.
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const status = answeredStatus(res);
      const { stream, rows, errorCode, route } = res.locals as { stream?: string; rows?: number; errorCode?: string; route?: string };
      const routePath = (req.route as { path?: unknown } | undefined)?.path;
      // A pattern with a parameter (`/:stream`) is only a route once the router named it.
      const label = route ?? (typeof routePath === 'string' && !routePath.includes(':') ? routePath : 'unmatched');
      metrics.observeRequest(req.method, label, status, seconds);
      log.info(
        { method: req.method, path: req.path, status, ms: Math.round(seconds * 1e4) / 10, stream, rows, code: errorCode },
        'request',
      );
    });
    next();
  };
}

/** SPEC section 7: once shutdown begins, requests that still arrive get a fast 503. */
function refuseWhileClosing(lifecycle: Lifecycle, writer: Writer): RequestHandler {
  return (_req, res, next) => {
    if (!lifecycle.closing) return next();
    res.set('Connection', 'close');
    next(new ShuttingDownError(writer.retryAfterSec()));
  };
}
