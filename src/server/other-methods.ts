import type { Router } from 'express';
import { MethodNotAllowedError } from '../shared/errors.js';

/**
 * Answers other methods on fixed read-only paths with 405 and `Allow`, rather
 * than letting them fall through to the ingest route's "no such stream".
 * Register after the paths' own handlers.
 */
export function refuseOtherMethods(router: Router, paths: string[], allowed: readonly string[] = ['GET', 'HEAD']): void {
  router.all(paths, (req) => {
    throw new MethodNotAllowedError(req.method, allowed);
  });
}
