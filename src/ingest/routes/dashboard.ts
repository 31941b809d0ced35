/**
 * The live dashboard: `GET /` and `/dashboard` (the page), its script and
 * styles under `/dashboard/`, `GET /dashboard/state` (what the page shows, as
 * JSON) and `GET /events` (Server-Sent Events: the state, then a `rows` event
 * per accepted request). The page shell is open; the data behind it needs
 * READ_TOKEN when set (`/events` also takes it as `?token=`, as EventSource
 * cannot send headers).
 */
import { type RequestHandler, type Response, Router } from 'express';
import { requireToken, requireTokenOrQuery } from '../../server/auth.js';
import { type Asset, loadDashboardAssets } from '../dashboard/assets.js';
import type { EventHub } from '../dashboard/event-hub.js';
import type { LivePoints } from '../dashboard/live-points.js';
import { refuseOtherMethods } from '../../server/other-methods.js';

export interface DashboardRouteDeps {
  readonly live: LivePoints;
  readonly eventHub: EventHub;
  readonly readToken: string | undefined;
}

export function createDashboardRouter({ live, eventHub, readToken }: DashboardRouteDeps): Router {
  const { page, files } = loadDashboardAssets();
  const router = Router();

  const serve =
    (asset: Asset): RequestHandler =>
    (_req, res) => {
      send(res, asset);
    };
  router.get('/', serve(page));
  router.get('/dashboard', serve(page));
  for (const [path, asset] of files) router.get(path, serve(asset));

  router.get('/dashboard/state', requireToken(readToken), (_req, res) => {
    res.set('Cache-Control', 'no-store').json(live.snapshot());
  });

  router.get('/events', requireTokenOrQuery(readToken), (req, res) => {
    // A HEAD would hold one of the few client slots for a stream it never reads.
    if (req.method === 'HEAD') return void res.type('text/event-stream').end();
    eventHub.connect(req, res, { event: 'state', data: live.snapshot() });
  });

  refuseOtherMethods(router, ['/', '/dashboard', '/dashboard/state', '/events', ...files.keys()]);
  return router;
}

function send(res: Response, asset: Asset): void {
  // Revalidated on every load (a 304 while unchanged), so an upgrade shows at once.
  res.set({ 'Content-Type': asset.type, 'Cache-Control': 'no-cache', ETag: asset.etag }).send(asset.body);
}
