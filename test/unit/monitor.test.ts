import { afterEach, describe, expect, it } from 'vitest';
import { type Monitor, createMonitor, monitorIntervalMs } from '../../src/ingest/monitor.js';
import { createStreamActivity } from '../../src/server/stream-activity.js';
import { memoryLogger } from '../support/logs.js';

let monitor: Monitor | undefined;
afterEach(() => monitor?.close());

function setup(config = { writeQueueMaxSize: 10, queueWarnThreshold: 0.8, inactivityWarnSec: 2 }) {
  let now = 1_000_000;
  let queue = 0;
  const { logger, lines } = memoryLogger();
  const activity = createStreamActivity(['data', 'data2'], () => now);
  monitor = createMonitor({ config, logger, activity, queueLength: () => queue, now: () => now });
  const messages = () => lines.map((l) => `${String(l.level)} ${String(l.msg)}${typeof l.stream === 'string' ? ` ${l.stream}` : ''}`);
  return {
    activity,
    messages,
    lines,
    check: () => monitor?.check(),
    advance: (ms: number) => (now += ms),
    setQueue: (n: number) => (queue = n),
    at: () => now,
  };
}

describe('monitor', () => {
  it('checks every few seconds, sooner for short inactivity limits', () => {
    expect(monitorIntervalMs(120)).toBe(5000);
    expect(monitorIntervalMs(2)).toBe(500);
  });

  it('warns of a backlog at most once a minute and says when it clears', () => {
    const w = setup();
    w.setQueue(7);
    w.check();
    expect(w.messages()).toEqual([]);
    w.setQueue(8);
    for (let i = 0; i <= 12; i++) {
      w.check();
      w.advance(5_000);
    }
    expect(w.messages()).toEqual(['40 write queue backlog', '40 write queue backlog']);
    expect(w.lines[0]).toMatchObject({ rows: 8, warnLevel: 8, max: 10 });
    w.setQueue(0);
    w.check();
    w.check();
    expect(w.messages().slice(2)).toEqual(['30 write queue backlog cleared']);
  });

  it('warns when a stream that had data goes quiet, repeats every INACTIVITY_WARN_SEC, and says when it resumes', () => {
    const w = setup();
    w.check();
    w.advance(10_000);
    w.check();
    expect(w.messages()).toEqual([]); // never seen: no warning
    w.activity.record('data', w.at());
    w.advance(1_900);
    w.check();
    expect(w.messages()).toEqual([]);
    w.advance(100);
    w.check();
    w.advance(1_000);
    w.check();
    expect(w.messages()).toEqual(['40 stream inactive data']);
    expect(w.lines[0]).toMatchObject({ stream: 'data', idleSec: 2 });
    w.advance(1_000);
    w.check();
    expect(w.messages()).toEqual(['40 stream inactive data', '40 stream inactive data']);
    w.activity.record('data', w.at());
    w.check();
    w.check();
    expect(w.messages().slice(2)).toEqual(['30 stream resumed data']);
  });
});
