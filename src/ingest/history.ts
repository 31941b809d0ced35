/**
 * The bounded ring of recent ingest requests behind `/history` (SPEC
 * sections 6 and 9): the last HISTORY_MAX entries, newest first.
 */
export interface HistoryEntry {
  /** ISO 8601. */
  readonly time: string;
  readonly stream: string;
  readonly ip: string;
  readonly status: number;
  readonly rows: number;
  /** The raw body as text, cut to 500 characters. */
  readonly payload: string;
  readonly replayed?: boolean;
}

export interface HistoryQuery {
  readonly stream?: string;
  readonly limit: number;
}

export interface History {
  record(entry: HistoryEntry): void;
  /** Newest first, filtered by stream, at most `limit`. */
  list(query: HistoryQuery): HistoryEntry[];
  readonly size: number;
}

export const PAYLOAD_MAX_CHARS = 500;

export function createHistory(max: number): History {
  const ring = new Array<HistoryEntry | undefined>(max);
  let next = 0;
  let size = 0;
  return {
    record(entry) {
      ring[next] = entry;
      next = (next + 1) % max;
      size = Math.min(size + 1, max);
    },
    list({ stream, limit }) {
      const out: HistoryEntry[] = [];
      for (let i = 1; i <= size && out.length < limit; i++) {
        const entry = ring[(next - i + max) % max] as HistoryEntry;
        if (stream === undefined || entry.stream === stream) out.push(entry);
      }
      return out;
    },
    get size() {
      return size;
    },
  };
}

/** Cuts a payload to what history keeps. */
export function payloadText(raw: string): string {
  return raw.length <= PAYLOAD_MAX_CHARS ? raw : raw.slice(0, PAYLOAD_MAX_CHARS);
}
