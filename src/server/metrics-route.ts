/**
 * `GET /metrics`: Prometheus text, or with `?format=json` (or an Accept that
 * prefers application/json) the Flask10X-style JSON view. READ_TOKEN guards it.
 */
import { Router } from 'express';
import { requireToken } from './auth.js';
import type { Metrics } from './metrics.js';
import { refuseOtherMethods } from './other-methods.js';

export function createMetricsRouter(metrics: Metrics, readToken: string | undefined): Router {
  const router = Router();
  router.get('/metrics', requireToken(readToken), async (req, res) => {
    // curl sends */* and Prometheus prefers text: only an explicit JSON preference gets JSON.
    const wantsJson = req.query.format === 'json' || req.accepts(['text/plain', 'application/json']) === 'application/json';
    if (wantsJson) {
      res.json(await metrics.jsonView());
      return;
    }
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  refuseOtherMethods(router, ['/metrics']);
  return router;
}
