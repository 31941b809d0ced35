/**
 * One source of "last received": after a restart, `/streams`, `/history/json`
 * and `/metrics?format=json` all know each stream's newest row (from the
 * tails of its files), and say the same time.
 */
import { describe, expect, it } from 'vitest';
import { postJson } from '../support/http-client.js';
import { useServers, serverEnv } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const servers = useServers();

type LastReceived = Record<string, string | null>;

async function lastReceivedSeenBy(url: string): Promise<{ streams: LastReceived; history: LastReceived; metrics: LastReceived }> {
  const streams = (await (await fetch(`${url}/streams`)).json()) as { streams: Array<{ name: string; last_received: string | null }> };
  const history = (await (await fetch(`${url}/history/json`)).json()) as { last_received: Record<string, string | null> };
  const metrics = (await (await fetch(`${url}/metrics?format=json`)).json()) as { last_received: Record<string, string | null> };
  return {
    streams: Object.fromEntries(streams.streams.map((s) => [s.name, s.last_received])),
    history: history.last_received,
    metrics: metrics.last_received,
  };
}

describe('last received, after a restart', () => {
  it('is the same in /streams, /history/json and /metrics?format=json, and is the newest row on disk', async () => {
    const env = serverEnv(dir.path, { STREAMS: 'data,data2,quiet' });
    let server = await servers.start(env);
    expect((await postJson(`${server.url}/data?ack=durable`, { t: 1 })).status).toBe(201);
    expect((await postJson(`${server.url}/data2?ack=durable`, { t: 2 })).status).toBe(201);
    expect((await postJson(`${server.url}/data?ack=durable`, { t: 3 })).status).toBe(201);
    const before = await lastReceivedSeenBy(server.url);
    expect(before.metrics.data).toMatch(/^\d{4}-\d\d-\d\dT/);
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);

    server = await servers.start(env);
    const after = await lastReceivedSeenBy(server.url);
    // Nothing was received since the start, yet every reader knows the newest row of each stream.
    expect(after.streams).toEqual(before.metrics);
    expect(after.history).toEqual(before.metrics);
    expect(after.metrics).toEqual(before.metrics);
    expect(after.metrics.quiet).toBeNull();
  });
});
