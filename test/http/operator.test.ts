import { execFileSync, spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as nodeFs from 'node:fs';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createInlineRunner } from '../../src/writer/runners.js';
import { defaultWriteDeps } from '../../src/writer/worker/commit.js';
import type { WriterFs } from '../../src/storage/fs.js';
import { setUpWorlds } from '../support/app.js';
import { waitFor } from '../support/wait.js';

const worlds = setUpWorlds();
const { world } = worlds;

/** The sample value of `name{labels}` in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const SPEC_METRICS = [
  'http_requests_total',
  'http_request_duration_seconds',
  'ingest_rows_total',
  'ingest_rejected_total',
  'write_queue_length',
  'write_queue_maxsize',
  'write_success_total',
  'write_error_total',
  'write_batch_rows',
  'write_fsync_duration_seconds',
  'last_received_timestamp_seconds',
  'inactivity_seconds',
];

describe('/metrics', () => {
  it('names every SPEC metric and counts rows accepted and made durable', async () => {
    const { app } = world();
    for (let i = 0; i < 7; i++) await request(app).post('/data').send({ seq: i }).expect(202);
    await request(app).post('/data').send([{ seq: 7 }, { seq: 8 }, { seq: 9 }]).expect(202);
    await request(app).post('/data').set('content-type', 'application/json').send('{oops').expect(400);
    await worlds.writer.drain(5_000);
    const res = await request(app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of SPEC_METRICS) expect(res.text).toContain(`# TYPE ${name} `);
    expect(sample(res.text, 'write_success_total')).toBe(10);
    expect(sample(res.text, 'ingest_rows_total{stream="data"}')).toBe(10);
    expect(sample(res.text, 'ingest_rows_total{stream="data2"}')).toBe(0);
    expect(sample(res.text, 'ingest_rejected_total{stream="data",reason="bad_json"}')).toBe(1);
    expect(sample(res.text, 'http_requests_total{method="POST",route="/data",status="202"}')).toBe(8);
    expect(sample(res.text, 'write_queue_maxsize')).toBe(5000);
    expect(sample(res.text, 'write_queue_length')).toBe(0);
    expect(sample(res.text, 'last_received_timestamp_seconds{stream="data"}')).toBeGreaterThan(1.7e9);
    expect(sample(res.text, 'inactivity_seconds{stream="data"}')).toBeGreaterThanOrEqual(0);
    expect(res.text).not.toContain('inactivity_seconds{stream="data2"}');
  });

  it('gives the Flask10X JSON view with ?format=json or Accept: application/json', async () => {
    let now = Date.UTC(2026, 10, 23, 12, 0, 0);
    const statfs = () => Promise.resolve({ bavail: 1000, bsize: 4096 });
    const { app } = world({ env: { WRITE_QUEUE_MAXSIZE: '100', QUEUE_WARN_THRESHOLD: '0.5', INACTIVITY_WARN_SEC: '30' }, now: () => now, statfs });
    await request(app).post('/data?ack=durable').send([{ a: 1 }, { a: 2 }]).expect(201);
    now += 4_500;
    const expected = {
      queue_length: 0,
      queue_maxsize: 100,
      queue_warn_threshold: 50,
      write_success_total: 2,
      write_error_total: 0,
      ingest_rows_total: { data: 2, data2: 0, data3: 0, data4: 0 },
      last_received: { data: '2026-11-23T12:00:00.000Z', data2: null, data3: null, data4: null },
      inactivity_seconds: { data: 4.5, data2: null, data3: null, data4: null },
      inactivity_warn_threshold_sec: 30,
      // SPEC section 12: the stream files as stored, and DATA_DIR's free space.
      data_dir_bytes: statSync(join(worlds.dir, 'data.csv')).size,
      data_dir_free_bytes: 4096000,
    };
    expect((await request(app).get('/metrics?format=json')).body).toEqual(expected);
    expect((await request(app).get('/metrics').set('accept', 'application/json')).body).toEqual(expected);
    // What Prometheus sends gets text.
    const scrape = await request(app).get('/metrics').set('accept', 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1');
    expect(scrape.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('keeps the label set fixed when 1,000 requests go to random unknown paths', async () => {
    const { app } = world();
    const series = async () =>
      (await request(app).get('/metrics')).text
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => l.slice(0, l.lastIndexOf(' ')));
    // Warm up every label combination these requests can produce, scrapes included.
    await request(app).get('/nope');
    await request(app).post('/nope').send({ a: 1 });
    await series();
    const before = await series();
    const agent = request(app);
    for (let i = 0; i < 1000; i++) {
      const path = `/${Math.random().toString(36).slice(2)}/${i}`;
      const res = await (i % 2 === 0 ? agent.get(path) : agent.post(path).send({ a: i }));
      expect(res.status).toBe(404);
    }
    expect(await series()).toEqual(before);
    const text = (await request(app).get('/metrics')).text;
    expect(text).toContain('route="unmatched"');
    expect(new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]))).toEqual(new Set(['/metrics', 'unmatched']));
  });

  it('passes promtool check metrics', async (context) => {
    const promtool = spawnSync('promtool', ['--version']);
    if (promtool.error) {
      context.skip('promtool is not installed (Debian package prometheus; .ci/run installs it)');
      return;
    }
    const { app } = world({ defaultMetrics: true });
    await request(app).post('/data?ack=durable').send({ a: 1 });
    await request(app).get('/nope');
    const { text } = await request(app).get('/metrics');
    expect(text).toContain('process_cpu_seconds_total');
    const file = join(worlds.dir, 'metrics.txt');
    writeFileSync(file, text);
    // promtool reads the exposition on stdin and exits non-zero on any problem.
    const output = execFileSync('sh', ['-c', `promtool check metrics < ${file}`], { encoding: 'utf8' });
    expect(output).toBe('');
  });
});

describe('/history', () => {
  it('escapes everything from the request in the HTML page', async () => {
    const { app } = world();
    await request(app).post('/data').send({ note: '<script>alert(1)</script>', q: `"'&` }).expect(202);
    const page = await request(app).get('/history');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).not.toContain('<script>');
    expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.text).toContain('&quot;&#39;&amp;');
    expect(page.text).toContain('name="viewport"');
    expect(page.text).toMatch(/<b>data<\/b><span>last reading: 20\d\d-/);
    expect(page.text).toMatch(/<b>data2<\/b><span>last reading: never seen/);
  });

  it('lists every ingest request newest first, rejected ones with their status, and not health or metrics requests', async () => {
    const { app } = world();
    await request(app).post('/data').send({ a: 1 });
    await request(app).post('/data2').send('[1]').set('content-type', 'application/json');
    await request(app).get('/data');
    await request(app).get('/healthz');
    await request(app).get('/metrics');
    await request(app).get('/history');
    const { body } = await request(app).get('/history/json');
    expect(body.entries.map((e: { stream: string; status: number; rows: number }) => [e.stream, e.status, e.rows])).toEqual([
      ['data', 405, 0],
      ['data2', 400, 0],
      ['data', 202, 1],
    ]);
    expect(body.entries[2]).toEqual({ time: expect.stringMatching(/Z$/), stream: 'data', ip: expect.any(String), status: 202, rows: 1, payload: '{"a":1}' });
  });

  it('filters by stream and limit, defaults limit to 100, cuts payloads to 500 characters, and holds at most HISTORY_MAX', async () => {
    const { app } = world({ env: { HISTORY_MAX: '120' } });
    for (let i = 0; i < 130; i++) await request(app).post(i % 2 === 0 ? '/data' : '/data2').send({ i, pad: 'x'.repeat(600) });
    expect((await request(app).get('/history/json')).body.entries).toHaveLength(100);
    expect((await request(app).get('/history/json?limit=1000')).body.entries).toHaveLength(120);
    const data2 = (await request(app).get('/history/json?stream=data2&limit=3')).body.entries;
    expect(data2.map((e: { payload: string }) => JSON.parse(`${e.payload.slice(0, e.payload.indexOf(',"pad"'))}}`).i)).toEqual([129, 127, 125]);
    expect(data2[0].payload).toHaveLength(500);
    expect((await request(app).get('/history/json?limit=0')).status).toBe(400);
    expect((await request(app).get('/history?stream=data&limit=2')).text.match(/<tr class=/g)).toHaveLength(2);
  });
});

describe('/readyz follows the writer', () => {
  it('turns 503 while the writer is stalled and 200 once it recovers', async () => {
    const failing = { on: true };
    const fs: WriterFs = {
      ...nodeFs,
      fsyncSync: (fd: number) => {
        if (failing.on) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
        nodeFs.fsyncSync(fd);
      },
    };
    const { app } = world({
      env: { WRITE_RETRIES: '1', WRITE_BACKOFF_BASE_SEC: '0.01', WRITE_BACKOFF_MAX_SEC: '0.05' },
      runner: createInlineRunner({ ...defaultWriteDeps, fs }),
    });
    await request(app).post('/data').send({ a: 1 }).expect(202);
    await waitFor(() => worlds.writer.stalled, 'the writer to stall');
    const stalled = await request(app).get('/readyz');
    expect(stalled.status).toBe(503);
    expect(stalled.body.checks.writer).toEqual({ ok: false, alive: true, stalled: true, hung: false });
    const metrics = await request(app).get('/metrics?format=json');
    expect(metrics.body.write_error_total).toBeGreaterThanOrEqual(2);
    failing.on = false;
    await waitFor(async () => (await request(app).get('/readyz')).status === 200, '/readyz to recover');
    expect((await request(app).get('/metrics?format=json')).body.write_success_total).toBe(1);
  });
});
