/** SPEC section 10's forwarding metrics, in the server's registry. */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface ForwardMetrics {
  rowsForwarded(stream: string, rows: number): void;
  publishFailed(count: number): void;
  connected(up: boolean): void;
  /** Read at scrape time: rows durable but not yet acknowledged by JetStream, by stream. */
  setLagSource(source: () => ReadonlyMap<string, number>): void;
}

export function createForwardMetrics(registry: Registry, streams: readonly string[]): ForwardMetrics {
  const registers = [registry];
  let lagSource: () => ReadonlyMap<string, number> = () => new Map();
  const rows = new Counter({
    name: 'forward_rows_total',
    help: 'Rows acknowledged by JetStream, by stream.',
    labelNames: ['stream'] as const,
    registers,
  });
  const errors = new Counter({ name: 'forward_errors_total', help: 'Publishes that failed or timed out (each is retried).', registers });
  const connected = new Gauge({ name: 'forward_connected', help: '1 while connected to NATS, else 0.', registers });
  new Gauge({
    name: 'forward_lag_rows',
    help: 'Rows made durable but not yet acknowledged by JetStream, by stream.',
    labelNames: ['stream'] as const,
    registers,
    collect() {
      const lag = lagSource();
      for (const stream of streams) this.set({ stream }, lag.get(stream) ?? 0);
    },
  });
  for (const stream of streams) rows.inc({ stream }, 0);
  errors.inc(0);
  connected.set(0);
  return {
    rowsForwarded: (stream, count) => rows.inc({ stream }, count),
    publishFailed: (count) => errors.inc(count),
    connected: (up) => connected.set(up ? 1 : 0),
    setLagSource(source) {
      lagSource = source;
    },
  };
}
