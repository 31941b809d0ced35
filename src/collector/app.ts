/**
 * The collector's HTTP side (SPEC section 10): `/healthz`, `/livez`,
 * `/readyz` and `/metrics`, from the same routers as the ingest server.
 */
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { noRoute, renderErrors } from '../server/errors.js';
import type { Metrics } from '../server/metrics.js';
import { createMetricsRouter } from '../server/metrics-route.js';
import { type OpsDeps, type ReadyCheck, createOpsRouter } from '../server/health-routes.js';
import type { Writer } from '../writer/writer.js';

export interface CollectorAppDeps {
  readonly version: string;
  readonly logger: Logger;
  readonly dataDir: string;
  /** DATA_DIR's disk, for /readyz. */
  readonly disk: OpsDeps['disk'];
  readonly readToken: string | undefined;
  readonly writer: Writer;
  readonly metrics: Metrics;
  readonly natsCheck: () => ReadyCheck;
  readonly now?: () => number;
  readonly startedAt?: number;
}

export function createCollectorApp(deps: CollectorAppDeps): Express {
  const now = deps.now ?? Date.now;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());
  app.use(
    createOpsRouter({
      version: deps.version,
      dataDir: deps.dataDir,
      disk: deps.disk,
      writer: deps.writer,
      now,
      startedAt: deps.startedAt ?? now(),
      readyChecks: () => ({ nats: deps.natsCheck() }),
    }),
  );
  app.use(createMetricsRouter(deps.metrics, deps.readToken));
  app.use(noRoute);
  app.use(renderErrors(deps.logger));
  return app;
}
