/**
 * One log line (at `info`) and one metrics observation per request. The
 * route label is the route's pattern (an ingest stream's path, a fixed path)
 * or `unmatched`, never the raw URL, so random paths cannot grow the label set.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { answeredStatus } from './answered-status.js';
import type { Metrics } from './metrics.js';

export interface RequestObserver {
  /** Observes every request that passes, once it closes. */
  readonly middleware: RequestHandler;
  /** Observes one request that closed (for the ingest routes, which run before the middleware). */
  observe(req: Request, res: Response, startedMs: number): void;
}

export function createRequestObserver(log: Logger, metrics: Metrics): RequestObserver {
  const observe = (req: Request, res: Response, startedMs: number): void => {
    const seconds = (performance.now() - startedMs) / 1000;
    const status = answeredStatus(res);
    const { stream, rows, errorCode, route } = res.locals as { stream?: string; rows?: number; errorCode?: string; route?: string };
    const routePath = (req.route as { path?: unknown } | undefined)?.path;
    // A pattern with a parameter (`/:stream`) is only a route once the router named it.
    const label = route ?? (typeof routePath === 'string' && !routePath.includes(':') ? routePath : 'unmatched');
    metrics.observeRequest(req.method, label, status, seconds);
    // Checked first: at `warn` the line's object is not even built.
    if (log.isLevelEnabled('info')) {
      log.info({ method: req.method, path: req.path, status, ms: Math.round(seconds * 1e4) / 10, stream, rows, code: errorCode }, 'request');
    }
  };
  return {
    middleware: (req, res, next) => {
      const started = performance.now();
      // 'close' comes for every request, answered or aborted by the client.
      res.once('close', () => observe(req, res, started));
      next();
    },
    observe,
  };
}
