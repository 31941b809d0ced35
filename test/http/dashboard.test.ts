/**
 * The dashboard's routes against createApp(): the page and its assets (no
 * inline script, no CDN, under 100 KB gzipped), READ_TOKEN on everything
 * with data, and /events: a posted reading arrives as an event, whatever
 * its body format; a client that hangs up is removed; the client cap.
 */
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { DashboardState, RowsUpdate } from '../../src/ingest/dashboard/live-points.js';
import { openEventStream } from '../support/event-stream.js';
import { setUpWorlds } from '../support/app.js';
import { waitFor } from '../support/wait.js';

const worlds = setUpWorlds();
// listen: the app on a real port, as event streams need a socket that stays open.
const { world, listen } = worlds;
const READ_TOKEN = 'read-tok-456';

describe('the dashboard page', () => {
  it('is served at / and /dashboard with its script and styles from this server, and no inline script', async () => {
    const { app } = world();
    const root = await request(app).get('/');
    expect(root.status).toBe(200);
    expect(root.headers['content-type']).toBe('text/html; charset=utf-8');
    expect((await request(app).get('/dashboard')).text).toBe(root.text);
    const html = root.text;
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.map((m) => /src="([^"]+)"/.exec(m[1] as string)?.[1])).toEqual(['/dashboard/uplot.js', '/dashboard/dashboard.js']);
    for (const m of scripts) expect(m[2]).toBe(''); // no inline script: CSP script-src 'self' holds
    expect(html).not.toMatch(/\son[a-z]+=/i); // no inline handlers either
    expect(html).not.toMatch(/https?:\/\//); // no CDN
    const csp = root.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    // Plain HTTP on a LAN: the browser must not be told to fetch the script over https.
    expect(csp).not.toContain('upgrade-insecure-requests');

    const js = await request(app).get('/dashboard/uplot.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.text).toContain('uPlot');
    expect((await request(app).get('/dashboard/uplot.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await request(app).get('/dashboard/dashboard.js')).text).toContain('EventSource');
    // Revalidated, not downloaded again, while unchanged.
    expect((await request(app).get('/dashboard/dashboard.js').set('if-none-match', js.headers.etag as string)).status).toBe(200);
    const again = await request(app).get('/dashboard/uplot.js').set('if-none-match', js.headers.etag as string);
    expect(again.status).toBe(304);
    expect((await request(app).post('/dashboard')).status).toBe(405);
    expect((await request(app).get('/dashboard/nope.js')).status).toBe(404);
  });

  it('weighs under 100 KB gzipped: the HTML and every script and stylesheet it loads', async () => {
    const { app } = world();
    const html = (await request(app).get('/')).text;
    const assets = [...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1] as string);
    expect(assets.sort()).toEqual(['/dashboard/dashboard.css', '/dashboard/dashboard.js', '/dashboard/uplot.css', '/dashboard/uplot.js']);
    let gzipped = gzipSync(html).length;
    const sizes: Record<string, number> = { html: gzipped };
    for (const path of assets) {
      const res = await request(app).get(path).buffer(true).parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => done(null, Buffer.concat(chunks)));
      });
      expect(res.status, path).toBe(200);
      const size = gzipSync(res.body as Buffer).length;
      sizes[path] = size;
      gzipped += size;
    }
    console.log(`dashboard page weight, gzipped: ${JSON.stringify(sizes)}, total ${gzipped} bytes`);
    expect(gzipped).toBeGreaterThan(10_000); // uPlot is in it
    expect(gzipped).toBeLessThan(100 * 1024);
  });
});

describe('READ_TOKEN on the dashboard', () => {
  it('leaves the page shell open and guards the state and the events', async () => {
    const w = world({ env: { READ_TOKEN } });
    const { app, lines } = w;
    for (const path of ['/', '/dashboard', '/dashboard/dashboard.js', '/dashboard/uplot.js']) expect((await request(app).get(path)).status, path).toBe(200);
    expect((await request(app).get('/dashboard/state')).status).toBe(401);
    expect((await request(app).get('/dashboard/state').set('authorization', 'Bearer nope')).status).toBe(401);
    // The state takes the header only: it is fetched, not opened by EventSource.
    expect((await request(app).get(`/dashboard/state?token=${READ_TOKEN}`)).status).toBe(401);
    const state = await request(app).get('/dashboard/state').set('authorization', `Bearer ${READ_TOKEN}`);
    expect(state.status).toBe(200);
    expect((state.body as DashboardState).streams.map((s) => s.stream)).toEqual(['data', 'data2', 'data3', 'data4']);

    const { url } = await listen(w);
    const none = await openEventStream(`${url}/events`);
    expect(none.status).toBe(401);
    await none.ended;
    expect(JSON.parse(none.text())).toEqual({ error: 'this route needs Authorization: Bearer <token>', code: 'UNAUTHORIZED' });
    const wrong = await openEventStream(`${url}/events?token=nope`);
    expect(wrong.status).toBe(401);
    const twice = await openEventStream(`${url}/events?token=${READ_TOKEN}&token=${READ_TOKEN}`);
    expect(twice.status).toBe(401);
    const byQuery = await openEventStream(`${url}/events?token=${READ_TOKEN}`);
    expect(byQuery.status).toBe(200);
    const byHeader = await openEventStream(`${url}/events`, { authorization: `Bearer ${READ_TOKEN}` });
    expect(byHeader.status).toBe(200);
    // A right query token does not rescue a wrong header.
    const mixed = await openEventStream(`${url}/events?token=${READ_TOKEN}`, { authorization: 'Bearer nope' });
    expect(mixed.status).toBe(401);
    await byQuery.next('state');
    byQuery.close();
    byHeader.close();
    await waitFor(() => w.eventHub.clients === 0, 'the clients to be removed');

    // The request log has the path, never the query with the token.
    const logged = lines.filter((l) => l.msg === 'request' && l.path === '/events');
    expect(logged.length).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(lines)).not.toContain(READ_TOKEN);
  });
});

describe('GET /events', () => {
  it('answers as an event stream, starts with the state, then sends each accepted batch within moments of its POST', async () => {
    const w = world();
    const { url } = await listen(w);
    await request(w.app).post('/data').send({ t: '20C' }).expect(202);
    const stream = await openEventStream(`${url}/events`);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-cache');
    expect(stream.headers['x-accel-buffering']).toBe('no');
    const state = (await stream.next('state')) as DashboardState;
    expect(state.streams[0]?.fields).toEqual([{ name: 't', unit: 'C', t: [expect.any(Number)], v: [20] }]);

    const posted = Date.now();
    await request(w.app).post('/data').send([{ t: '21.5C', door: 'open' }, { t: '22.5C', hum: 40 }]).expect(202);
    const rows = (await stream.next('rows')) as RowsUpdate;
    expect(Date.now() - posted).toBeLessThan(1000);
    expect(rows).toMatchObject({
      stream: 'data',
      rows: 2,
      rows_per_minute: 3,
      last_reading: { cells: [['t', '22.5C'], ['hum', '40']] },
      fields: [
        { name: 't', unit: 'C', v: 22.5 },
        { name: 'hum', unit: '', v: 40 },
      ],
    });
    expect(rows.at).toBeGreaterThanOrEqual(posted - 1000);
    stream.close();
  });

  it('gets rows from every way in: NDJSON, a form, and line protocol', async () => {
    const w = world();
    const { url } = await listen(w);
    const stream = await openEventStream(`${url}/events`);
    await request(w.app).post('/data2').set('content-type', 'application/x-ndjson').send('{"n":1}\n{"n":2}\n').expect(202);
    expect(await stream.next('rows', (d) => (d as RowsUpdate).stream === 'data2')).toMatchObject({ rows: 2, fields: [{ name: 'n', v: 2 }] });
    await request(w.app).post('/data3').type('form').send('level=7.5cm').expect(202);
    expect(await stream.next('rows', (d) => (d as RowsUpdate).stream === 'data3')).toMatchObject({ fields: [{ name: 'level', unit: 'cm', v: 7.5 }] });
    await request(w.app).post('/api/v2/write?bucket=data4').set('content-type', 'text/plain').send('weather,room=attic temp=19.5,ok=t').expect(204);
    expect(await stream.next('rows', (d) => (d as RowsUpdate).stream === 'data4')).toMatchObject({ fields: [{ name: 'temp', v: 19.5 }] });
    stream.close();
  });

  it('sends nothing for refused requests', async () => {
    const w = world();
    const { url } = await listen(w);
    const stream = await openEventStream(`${url}/events`);
    await stream.next('state');
    await request(w.app).post('/data').set('content-type', 'application/json').send('{oops').expect(400);
    await request(w.app).post('/data').send({ mark: 1 }).expect(202);
    const first = (await stream.next('rows')) as RowsUpdate;
    expect(first.fields).toEqual([{ name: 'mark', unit: '', v: 1 }]);
    expect(stream.events.filter((e) => e.event === 'rows')).toHaveLength(1);
    stream.close();
  });

  it('removes a client that disconnects', async () => {
    const w = world();
    const { url } = await listen(w);
    const a = await openEventStream(`${url}/events`);
    const b = await openEventStream(`${url}/events`);
    await a.next('state');
    await b.next('state');
    expect(w.eventHub.clients).toBe(2);
    a.close();
    await waitFor(() => w.eventHub.clients === 1, 'the closed client to be removed');
    await request(w.app).post('/data').send({ t: 1 }).expect(202);
    await b.next('rows');
    b.close();
    await waitFor(() => w.eventHub.clients === 0, 'the last client to be removed');
  });

  it('answers 503 with Retry-After to one client more than the cap, and takes one again once a slot is free', async () => {
    const w = world({ eventHub: { maxClients: 2 } });
    const { url } = await listen(w);
    const a = await openEventStream(`${url}/events`);
    const b = await openEventStream(`${url}/events`);
    const refused = await openEventStream(`${url}/events`);
    expect([a.status, b.status, refused.status]).toEqual([200, 200, 503]);
    expect(refused.headers['retry-after']).toBe('30');
    await refused.ended;
    expect(JSON.parse(refused.text())).toMatchObject({ code: 'TOO_MANY_CLIENTS', error: expect.stringContaining('2 dashboard clients') });
    expect(w.eventHub.clients).toBe(2);
    a.close();
    await waitFor(() => w.eventHub.clients === 1, 'a slot to free');
    const c = await openEventStream(`${url}/events`);
    expect(c.status).toBe(200);
    b.close();
    c.close();
  });

  it('sends keep-alive comments, and ends every stream when the hub closes (shutdown)', async () => {
    const w = world({ eventHub: { keepAliveMs: 20 } });
    const { url } = await listen(w);
    const stream = await openEventStream(`${url}/events`);
    await waitFor(() => stream.text().includes('\n: keep-alive\n\n'), 'a keep-alive comment');
    w.lifecycle.closing = true;
    w.eventHub.close();
    await stream.ended;
    expect(w.eventHub.clients).toBe(0);
    const late = await openEventStream(`${url}/events`);
    expect(late.status).toBe(503);
  });

  it('answers HEAD without taking a client slot', async () => {
    const w = world({ eventHub: { maxClients: 1 } });
    const res = await request(w.app).head('/events');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(w.eventHub.clients).toBe(0);
  });
});

describe('GET /dashboard/state', () => {
  it('is what the page draws first: every stream, its points of the last hour, last reading and status inputs', async () => {
    let now = Date.UTC(2026, 10, 23, 12, 0, 0);
    const w = world({ now: () => now, env: { INACTIVITY_WARN_SEC: '45' } });
    await request(w.app).post('/data').send({ temp: '21.5C', p: '1013hPa', door: 'open' }).expect(202);
    now += 5000;
    await request(w.app).post('/data').send({ temp: '22C', p: '1012hPa', door: 'shut' }).expect(202);
    const res = await request(w.app).get('/dashboard/state');
    expect(res.headers['cache-control']).toBe('no-store');
    const state = res.body as DashboardState;
    expect(state).toMatchObject({ now, window_sec: 3600, quiet_after_sec: 45 });
    expect(state.streams[0]).toEqual({
      stream: 'data',
      last_received: new Date(now).toISOString(),
      rows_per_minute: 2,
      last_reading: { received_at: new Date(now).toISOString(), cells: [['temp', '22C'], ['p', '1012hPa'], ['door', 'shut']] },
      fields: [
        { name: 'temp', unit: 'C', t: [now - 5000, now], v: [21.5, 22] },
        { name: 'p', unit: 'hPa', t: [now - 5000, now], v: [1013, 1012] },
      ],
    });
    expect(state.streams[1]?.last_received).toBeNull();
  });
});
