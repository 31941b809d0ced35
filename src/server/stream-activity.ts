/**
 * When each stream last received data: one source for `/metrics`, the
 * history page and the inactivity monitor.
 */
export interface StreamActivity {
  /** Notes that `stream` accepted rows at `atMs`. */
  record(stream: string, atMs: number): void;
  /** Epoch ms of the last accepted rows, or null for a stream never seen. */
  lastReceived(stream: string): number | null;
  /** Seconds since the last accepted rows, or null for a stream never seen. */
  idleSec(stream: string): number | null;
  readonly streams: readonly string[];
}

export function createStreamActivity(streams: readonly string[], now: () => number): StreamActivity {
  const last = new Map<string, number>();
  return {
    streams,
    record(stream, atMs) {
      last.set(stream, atMs);
    },
    lastReceived: (stream) => last.get(stream) ?? null,
    idleSec(stream) {
      const at = last.get(stream);
      return at === undefined ? null : Math.max(0, (now() - at) / 1000);
    },
  };
}
