/**
 * The ingest pipeline's listener for accepted rows: notes them in the
 * dashboard's memory and pushes `rows` events to the open dashboards, at
 * most one per stream every PUSH_INTERVAL_MS: the first batch at once, those
 * arriving soon after merged into one event. So a sensor sending thousands
 * of requests a second costs each open tab ten events a second, not
 * thousands, and a reading still shows well within a second.
 */
import type { Logger } from 'pino';
import type { Reading } from '../../storage/reading.js';
import type { EventHub } from './event-hub.js';
import type { LivePoints, RowsUpdate } from './live-points.js';

/** Called once per accepted request, after its rows are queued. */
export type RowsAccepted = (stream: string, readings: readonly Reading[], receivedAt: number) => void;

export const PUSH_INTERVAL_MS = 100;

export interface LiveFeedDeps {
  readonly live: LivePoints;
  readonly eventHub: EventHub;
  readonly logger: Logger;
  readonly now?: () => number;
}

export function createLiveFeed({ live, eventHub, logger, now = Date.now }: LiveFeedDeps): RowsAccepted {
  const log = logger.child({ component: 'dashboard' });
  const pending = new Map<string, RowsUpdate>();
  let lastPush = -Infinity;
  let timer: NodeJS.Timeout | undefined;

  const push = (): void => {
    timer = undefined;
    lastPush = now();
    for (const update of pending.values()) eventHub.publish('rows', update);
    pending.clear();
  };

  return (stream, readings, receivedAt) => {
    // The rows are queued already: a fault here must not turn their answer into an error.
    try {
      const update = live.record(stream, readings, receivedAt, eventHub.clients > 0);
      if (update === null) return;
      const earlier = pending.get(stream);
      pending.set(stream, earlier === undefined ? update : merge(earlier, update));
      if (timer !== undefined) return;
      const wait = lastPush + PUSH_INTERVAL_MS - now();
      if (wait <= 0) push();
      else {
        timer = setTimeout(push, wait);
        timer.unref();
      }
    } catch (error) {
      log.error({ err: error, stream }, 'dashboard update failed');
    }
  };
}

/** Two updates of one stream as one: the later one's values, the rows of both, every field either changed. */
function merge(earlier: RowsUpdate, later: RowsUpdate): RowsUpdate {
  const fields = new Map(earlier.fields.map((field) => [field.name, field]));
  for (const field of later.fields) fields.set(field.name, field);
  return { ...later, rows: earlier.rows + later.rows, fields: [...fields.values()] };
}
