import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { setUpWorlds } from '../support/app.js';

const worlds = setUpWorlds();
const { world } = worlds;

const TOKENS = { INGEST_TOKEN: 'ingest-tok-123', READ_TOKEN: 'read-tok-456' };

describe('tokens', () => {
  it('guards ingest with INGEST_TOKEN: none 401, wrong 401, right 2xx', async () => {
    const { app } = world({ env: TOKENS });
    const none = await request(app).post('/data').send({ a: 1 });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: 'this route needs Authorization: Bearer <token>', code: 'UNAUTHORIZED' });
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect((await request(app).post('/data').set('authorization', 'Bearer wrong').send({ a: 1 })).status).toBe(401);
    expect((await request(app).post('/data').set('authorization', `Bearer ${TOKENS.READ_TOKEN}`).send({ a: 1 })).status).toBe(401);
    expect((await request(app).post('/data').set('authorization', `Basic ${TOKENS.INGEST_TOKEN}`).send({ a: 1 })).status).toBe(401);
    expect((await request(app).post('/data').set('authorization', `Bearer ${TOKENS.INGEST_TOKEN}x`).send({ a: 1 })).status).toBe(401);
    expect((await request(app).post('/data').set('authorization', `BEARER ${TOKENS.INGEST_TOKEN}`).send({ a: 1 })).status).toBe(202);
  });

  it.each(['/metrics', '/metrics?format=json', '/history', '/history/json'])('guards %s with READ_TOKEN: none 401, wrong 401, right 200', async (path) => {
    const { app } = world({ env: TOKENS });
    expect((await request(app).get(path)).status).toBe(401);
    expect((await request(app).get(path).set('authorization', 'Bearer nope')).status).toBe(401);
    expect((await request(app).get(path).set('authorization', `Bearer ${TOKENS.INGEST_TOKEN}`)).status).toBe(401);
    expect((await request(app).get(path).set('authorization', `Bearer ${TOKENS.READ_TOKEN}`)).status).toBe(200);
  });

  it('leaves the health endpoints open', async () => {
    const { app } = world({ env: TOKENS });
    for (const path of ['/healthz', '/livez', '/readyz']) expect((await request(app).get(path)).status).toBe(200);
  });

  it('never writes a token into the logs', async () => {
    const { app, lines } = world({ env: TOKENS });
    await request(app).post('/data').set('authorization', `Bearer ${TOKENS.INGEST_TOKEN}`).send({ a: 1 });
    await request(app).post('/data').set('authorization', 'Bearer guess').send({ a: 1 });
    await request(app).get('/metrics').set('authorization', `Bearer ${TOKENS.READ_TOKEN}`);
    const text = JSON.stringify(lines);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(text).not.toContain(TOKENS.INGEST_TOKEN);
    expect(text).not.toContain(TOKENS.READ_TOKEN);
    expect(text).not.toContain('guess');
  });
});

describe('rate limit', () => {
  it('answers the sixth ingest request in a minute with 429 and Retry-After when RATE_LIMIT_PER_MIN=5', async () => {
    const { app } = world({ env: { RATE_LIMIT_PER_MIN: '5' } });
    for (let i = 0; i < 5; i++) expect((await request(app).post('/data').send({ i })).status).toBe(202);
    const sixth = await request(app).post('/data2').send({ i: 6 });
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(sixth.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(sixth.body.code).toBe('RATE_LIMITED');
    // Only ingest routes are limited.
    expect((await request(app).get('/healthz')).status).toBe(200);
    expect((await request(app).get('/metrics')).status).toBe(200);
  });

  it('follows X-Forwarded-For when TRUST_PROXY is set, and ignores it when not', async () => {
    const trusting = world({ env: { RATE_LIMIT_PER_MIN: '2', TRUST_PROXY: 'loopback' } }).app;
    const from = (ip: string) => request(trusting).post('/data').set('x-forwarded-for', ip).send({ a: 1 });
    expect((await from('192.0.2.1')).status).toBe(202);
    expect((await from('192.0.2.1')).status).toBe(202);
    expect((await from('192.0.2.1')).status).toBe(429);
    expect((await from('192.0.2.2')).status).toBe(202);
    const history = await request(trusting).get('/history/json');
    expect(history.body.entries[0].ip).toBe('192.0.2.2');

    const direct = world({ env: { RATE_LIMIT_PER_MIN: '2' } }).app;
    const spoofed = (ip: string) => request(direct).post('/data').set('x-forwarded-for', ip).send({ a: 1 });
    expect((await spoofed('192.0.2.1')).status).toBe(202);
    expect((await spoofed('192.0.2.2')).status).toBe(202);
    expect((await spoofed('192.0.2.3')).status).toBe(429);
  });
});

describe('security headers (helmet)', () => {
  it('are on ingest, metrics, history and error answers', async () => {
    const { app } = world();
    for (const res of [
      await request(app).post('/data').send({ a: 1 }),
      await request(app).get('/metrics'),
      await request(app).get('/history'),
      await request(app).get('/history/json'),
      await request(app).get('/nope'),
    ]) {
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('are on every ingest answer, written by its own handler: errors, 204s and replays included', async () => {
    const { app } = world();
    const answers = [
      await request(app).post('/data').set('content-type', 'application/json').send('{not json'),
      await request(app).get('/data'),
      await request(app).post('/data').set('content-type', 'text/plain').send('x'),
      await request(app).post('/api/v2/write?bucket=data').send('m v=1'),
      await request(app).post('/api/v2/write?bucket=nope').send('m v=1'),
      await request(app).post('/data').set('Idempotency-Key', 'k1').send({ a: 1 }),
      await request(app).post('/data').set('Idempotency-Key', 'k1').send({ a: 1 }),
    ];
    expect(answers.map((res) => res.status)).toEqual([400, 405, 415, 204, 404, 202, 202]);
    expect(answers[6]?.headers['idempotent-replayed']).toBe('true');
    for (const res of answers) {
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
    // Each header once (a header sent twice reaches the client as its values joined by a comma).
    const policy = (await request(app).get('/history/json')).headers['content-security-policy'];
    for (const res of answers) expect(res.headers['content-security-policy']).toBe(policy);
  });

  it('let the history page render: it uses nothing its CSP forbids', async () => {
    const { app } = world();
    await request(app).post('/data').send({ a: 1 });
    const page = await request(app).get('/history');
    const csp = Object.fromEntries(
      (page.headers['content-security-policy'] as string).split(';').map((d) => {
        const [name, ...values] = d.trim().split(/\s+/);
        return [name, values];
      }),
    );
    // The page's only resource is its inline <style>: allowed by style-src.
    expect(page.text).toMatch(/<style>/);
    expect(csp['style-src']).toContain("'unsafe-inline'");
    // No script, no inline handlers, no external resources, no inline style attributes.
    expect(page.text).not.toMatch(/<script|\son\w+=|\ssrc=|<link|\sstyle=|https?:\/\//i);
    expect(csp['script-src']).toEqual(["'self'"]);
  });
});
