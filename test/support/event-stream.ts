/**
 * A small Server-Sent Events client for tests: connects with node:http (so
 * the test sees the status and headers, and can hang up at will), parses
 * events and comments as they arrive, and waits for one without sleeping.
 */
import { type IncomingMessage, request } from 'node:http';

export interface ServerSentEvent {
  readonly event: string;
  readonly data: string;
}

export interface EventStream {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  /** The whole body so far (events and comments), e.g. for an error answer. */
  text(): string;
  readonly events: ServerSentEvent[];
  /** Resolves with the first event (past or future) named `event` that `match` accepts. */
  next(event: string, match?: (data: unknown) => boolean, timeoutMs?: number): Promise<unknown>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  /** Hangs up. */
  close(): void;
}

export function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let body = '';
      let pending = '';
      const events: ServerSentEvent[] = [];
      const waiters = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        pending += chunk;
        let end = pending.indexOf('\n\n');
        while (end >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) events.push({ event, data: data.join('\n') });
          end = pending.indexOf('\n\n');
        }
        for (const wake of waiters) wake();
      });
      const ended = new Promise<void>((done) => res.once('close', () => done()));
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: () => body,
        events,
        ended,
        next(event, match = () => true, timeoutMs = 10_000) {
          return new Promise((found, fail) => {
            const look = () => {
              for (const e of events) {
                if (e.event !== event) continue;
                const data = JSON.parse(e.data) as unknown;
                if (match(data)) {
                  waiters.delete(look);
                  clearTimeout(timer);
                  found(data);
                  return;
                }
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(look);
              fail(new Error(`no '${event}' event matched within ${timeoutMs} ms; got ${JSON.stringify(events).slice(0, 2000)}`));
            }, timeoutMs);
            waiters.add(look);
            look();
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}
