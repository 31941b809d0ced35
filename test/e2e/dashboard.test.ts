/**
 * The dashboard at the process boundary, with the built server: an open
 * event stream does not hold up a graceful stop, and after a restart the
 * dashboard's state holds the points posted before it (read back from the
 * files the server wrote).
 */
import { describe, expect, it } from 'vitest';
import type { DashboardState } from '../../src/ingest/dashboard/live-points.js';
import { openEventStream } from '../support/event-stream.js';
import { postJson } from '../support/http-client.js';
import { useServers, serverEnv } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const servers = useServers();

describe('the dashboard and the server process', () => {
  it('SIGTERM with an open /events client still exits 0 at once, rows written, the stream ended', async () => {
    const env = serverEnv(dir.path, { SHUTDOWN_TIMEOUT_SEC: '30' });
    const server = await servers.start(env);
    const events = await openEventStream(`${server.url}/events`);
    await events.next('state');
    expect((await postJson(`${server.url}/data`, { t: 1 })).status).toBe(202);
    await events.next('rows');

    const signalled = Date.now();
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    const tookMs = Date.now() - signalled;
    await events.ended;
    expect(exit).toEqual({ code: 0, signal: null });
    // An open stream would hold server.close() until SHUTDOWN_TIMEOUT_SEC (30 s) ran out.
    expect(tookMs).toBeLessThan(10_000);
    console.log(`dashboard: SIGTERM with an open event stream: exit 0 after ${tookMs} ms`);
  });

  it('after a restart on the same DATA_DIR, /dashboard/state has the points posted before it', async () => {
    const env = serverEnv(dir.path, { CSV_ROTATE: 'daily', READ_TOKEN: 'read-me' });
    const auth = { authorization: 'Bearer read-me' };
    let server = await servers.start(env);
    const posted = [
      { temp: '20.5C', hum: 40 },
      { temp: '21C', hum: 41, door: 'open' },
      { temp: '-1.5C', hum: 42 },
    ];
    for (const reading of posted) expect((await postJson(`${server.url}/data?ack=durable`, reading)).status).toBe(201);
    const before = (await (await fetch(`${server.url}/dashboard/state`, { headers: auth })).json()) as DashboardState;
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });

    server = await servers.start(env);
    const res = await fetch(`${server.url}/dashboard/state`, { headers: auth });
    expect(res.status).toBe(200);
    const after = (await res.json()) as DashboardState;
    const data = after.streams.find((s) => s.stream === 'data');
    // Each POST got its own second or shares one (one point a second, the last value kept): compare with the live state.
    expect(data?.fields).toEqual(before.streams.find((s) => s.stream === 'data')?.fields);
    expect(data?.fields.find((f) => f.name === 'temp')?.v.at(-1)).toBe(-1.5);
    expect(data?.fields.find((f) => f.name === 'hum')?.v.at(-1)).toBe(42);
    expect(data?.last_reading?.cells).toEqual([['temp', '-1.5C'], ['hum', '42']]);
    expect(data?.last_received).toBe(before.streams.find((s) => s.stream === 'data')?.last_received);
    expect(server.logLines().find((l) => l.msg === 'dashboard points restored')).toMatchObject({ rows: 3 });
  });
});
