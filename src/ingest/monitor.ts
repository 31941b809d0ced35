/**
 * The timer behind the operator's WARN lines (SPEC section 6):
 * - `write queue backlog` while the queue is at or above the warn level, at
 *   most once a minute, and `write queue backlog cleared` when it drops;
 * - `stream inactive` for a stream that received data and then none for
 *   INACTIVITY_WARN_SEC, again every INACTIVITY_WARN_SEC while idle, and
 *   `stream resumed` when data comes back.
 */
import type { Logger } from 'pino';
import type { Config } from '../shared/config.js';
import { warnLevelRows } from '../server/metrics.js';
import type { StreamActivity } from '../server/stream-activity.js';

export interface MonitorDeps {
  readonly config: Pick<Config, 'writeQueueMaxSize' | 'queueWarnThreshold' | 'inactivityWarnSec'>;
  readonly logger: Logger;
  readonly activity: StreamActivity;
  readonly queueLength: () => number;
  readonly now: () => number;
}

export interface Monitor {
  /** One look at the queue and the streams; the timer calls this. */
  check(): void;
  close(): void;
}

const BACKLOG_REPEAT_MS = 60_000;

/** "Every few seconds": 5 s, or a quarter of the inactivity limit when that is shorter. */
export function monitorIntervalMs(inactivityWarnSec: number): number {
  return Math.min(5_000, Math.max(100, (inactivityWarnSec * 1000) / 4));
}

export function createMonitor(deps: MonitorDeps): Monitor {
  const { config, activity, now } = deps;
  const log = deps.logger.child({ component: 'monitor' });
  const warnLevel = warnLevelRows(config);
  const inactiveMs = config.inactivityWarnSec * 1000;

  let backlogWarnedAt: number | null = null;
  /** Per inactive stream: when we last warned, and the last-received time we warned about. */
  const inactive = new Map<string, { warnedAt: number; lastReceived: number }>();

  function checkBacklog(at: number): void {
    const rows = deps.queueLength();
    if (rows >= warnLevel) {
      if (backlogWarnedAt === null || at - backlogWarnedAt >= BACKLOG_REPEAT_MS) {
        log.warn({ rows, warnLevel, max: config.writeQueueMaxSize }, 'write queue backlog');
        backlogWarnedAt = at;
      }
    } else if (backlogWarnedAt !== null) {
      log.info({ rows }, 'write queue backlog cleared');
      backlogWarnedAt = null;
    }
  }

  function checkStream(stream: string, at: number): void {
    const lastReceived = activity.lastReceived(stream);
    if (lastReceived === null) return;
    const state = inactive.get(stream);
    if (state !== undefined && lastReceived !== state.lastReceived) {
      log.info({ stream, idleSec: Math.round((lastReceived - state.lastReceived) / 1000) }, 'stream resumed');
      inactive.delete(stream);
      return;
    }
    const idleMs = at - lastReceived;
    if (idleMs < inactiveMs) return;
    if (state === undefined || at - state.warnedAt >= inactiveMs) {
      log.warn({ stream, idleSec: Math.round(idleMs / 1000), lastReceived: new Date(lastReceived).toISOString() }, 'stream inactive');
      inactive.set(stream, { warnedAt: at, lastReceived });
    }
  }

  function check(): void {
    const at = now();
    checkBacklog(at);
    for (const stream of activity.streams) checkStream(stream, at);
  }

  const timer = setInterval(check, monitorIntervalMs(config.inactivityWarnSec));
  timer.unref();
  return { check, close: () => clearInterval(timer) };
}
