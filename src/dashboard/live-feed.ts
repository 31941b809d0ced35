/**
 * The ingest pipeline's listener for accepted rows: notes them in the
 * dashboard's memory and pushes a `rows` event to the open dashboards.
 */
import type { Logger } from 'pino';
import type { Reading } from '../reading.js';
import type { EventHub } from './event-hub.js';
import type { LivePoints } from './live-points.js';

/** Called once per accepted request, after its rows are queued. */
export type RowsAccepted = (stream: string, readings: readonly Reading[], receivedAt: number) => void;

export function createLiveFeed({ live, eventHub, logger }: { live: LivePoints; eventHub: EventHub; logger: Logger }): RowsAccepted {
  const log = logger.child({ component: 'dashboard' });
  return (stream, readings, receivedAt) => {
    // The rows are queued already: a fault here must not turn their answer into an error.
    try {
      const update = live.record(stream, readings, receivedAt);
      if (update !== null) eventHub.publish('rows', update);
    } catch (error) {
      log.error({ err: error, stream }, 'dashboard update failed');
    }
  };
}
