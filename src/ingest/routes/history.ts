/**
 * `GET /history` (HTML) and `GET /history/json`: the last HISTORY_MAX ingest
 * requests, newest first, `?stream=<name>&limit=<n>` (limit defaults to 100).
 * READ_TOKEN guards both.
 */
import { type Request, Router } from 'express';
import { requireToken } from '../../server/auth.js';
import { BadRequestError } from '../../shared/errors.js';
import type { History, HistoryQuery } from '../history.js';
import { renderHistoryPage } from '../history-page.js';
import type { StreamActivity } from '../../server/stream-activity.js';
import { refuseOtherMethods } from '../../server/other-methods.js';

export interface HistoryRouteDeps {
  readonly history: History;
  readonly activity: StreamActivity;
  readonly historyMax: number;
  readonly readToken: string | undefined;
  readonly now: () => number;
}

export const DEFAULT_HISTORY_LIMIT = 100;

export function createHistoryRouter(deps: HistoryRouteDeps): Router {
  const { history, activity } = deps;
  const router = Router();
  const guard = requireToken(deps.readToken);

  function queryOf(req: Request): HistoryQuery {
    const { stream, limit } = req.query;
    if (stream !== undefined && typeof stream !== 'string') throw new BadRequestError('stream must be given once', 'BAD_QUERY');
    let n = DEFAULT_HISTORY_LIMIT;
    if (limit !== undefined) {
      n = typeof limit === 'string' && /^\d+$/.test(limit) ? Number(limit) : 0;
      if (n < 1) throw new BadRequestError(`limit must be a whole number of at least 1, got ${JSON.stringify(limit)}`, 'BAD_QUERY');
    }
    return { ...(stream === undefined || stream === '' ? {} : { stream }), limit: Math.min(n, deps.historyMax) };
  }

  router.get('/history/json', guard, (req, res) => {
    // Beside the entries (requests since this start), each stream's last received time: the
    // same stream activity as /metrics and /streams read, so it survives a restart.
    const lastReceived = Object.fromEntries(
      activity.streams.map((stream) => {
        const at = activity.lastReceived(stream);
        return [stream, at === null ? null : new Date(at).toISOString()];
      }),
    );
    res.json({ entries: history.list(queryOf(req)), last_received: lastReceived });
  });

  router.get('/history', guard, (req, res) => {
    const query = queryOf(req);
    const summaries = activity.streams.map((stream) => ({
      stream,
      lastReceived: activity.lastReceived(stream),
      lastStatus: history.list({ stream, limit: 1 })[0]?.status ?? null,
    }));
    res.type('html').send(renderHistoryPage(history.list(query), summaries, deps.now(), query));
  });

  refuseOtherMethods(router, ['/history', '/history/json']);
  return router;
}
