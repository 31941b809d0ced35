/** A test as a client over real sockets: a free port, a GET that may find nothing listening, a JSON POST, requests a few at a time. */
import { once } from 'node:events';
import { createServer } from 'node:net';

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Whether a GET of `url` answers 200 now (false while nothing listens there). */
export async function answers200(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

/** POSTs JSON; returns status, headers and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? null : JSON.parse(text) };
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  });
  await Promise.all(workers);
  return results;
}

/**
 * Posts `{ "id": "r<round>-<n>" }` to `data` and `data2` in turn, `inFlight`
 * at a time, until `stop()`; resolves to the ids answered 201. A request a
 * kill cut off is not acknowledged, and is not counted.
 */
export async function postIdsUntil(url: string, round: number, stop: () => boolean, inFlight = 8): Promise<string[]> {
  const acked: string[] = [];
  let next = 0;
  const client = async (): Promise<void> => {
    while (!stop()) {
      const id = `r${round}-${next++}`;
      const stream = next % 2 === 0 ? 'data' : 'data2';
      try {
        const res = await fetch(`${url}/${stream}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id }) });
        if (res.status === 201) acked.push(id);
        else await res.text();
      } catch {
        // The kill cut this request off: not acknowledged.
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, client));
  return acked;
}

/**
 * Asks `<url>/healthz` again and again, each after the last answer, until
 * the returned `stop()`; which resolves to each answer's time in ms, sorted.
 * Every answer must be 200.
 */
export function pollHealthz(url: string): { stop(): Promise<number[]> } {
  let stopped = false;
  const latencies: number[] = [];
  const polling = (async () => {
    while (!stopped) {
      const started = performance.now();
      const res = await fetch(`${url}/healthz`);
      await res.text();
      if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
      latencies.push(performance.now() - started);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await polling;
      return latencies.sort((a, b) => a - b);
    },
  };
}
