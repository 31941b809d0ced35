/**
 * COMPRESS_CLOSED=gzip in the built server (SPEC section 12): a closed file is
 * compressed at start-up without holding up requests, and everything that
 * reads files reads the `.gz` as it read the plain file: `/streams` (size as
 * stored), the CSV download, and the dashboard's restore after a restart.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DashboardState } from '../../src/ingest/dashboard/live-points.js';
import { pollHealthz } from '../support/http-client.js';
import { logLine, serverEnv, useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const servers = useServers();
const ARCHIVE = 'data.20261120T000000Z.csv';

/** An archive of readings one second apart, the newest `newestMs`, at least `bytes` long. */
function seedArchive(path: string, bytes: number, newestMs: number): { text: Buffer; rows: number } {
  const line = (i: number, at: number): string =>
    `${new Date(at).toISOString()},${(20 + Math.sin(i / 600) * 5).toFixed(2)},${(40 + (i % 97) / 10).toFixed(1)},${1000 + (i % 13)},${(3.3 - i / 1e7).toFixed(3)}\n`;
  const header = 'received_at,temperature,humidity,pressure,battery\n';
  const rows = Math.ceil((bytes - header.length) / (line(0, newestMs).length - 1));
  const parts = [header];
  for (let i = 0; i < rows; i++) parts.push(line(i, newestMs - (rows - 1 - i) * 1000));
  const text = Buffer.from(parts.join(''));
  writeFileSync(path, text);
  return { text, rows };
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

describe('COMPRESS_CLOSED=gzip', () => {
  it('compresses a 100 MB archive while /healthz stays answered, and /streams and the download read the .gz', async () => {
    const env = serverEnv(dir.path, { STREAMS: 'data', COMPRESS_CLOSED: 'gzip', LOG_LEVEL: 'info' });
    mkdirSync(env.DATA_DIR, { recursive: true });
    const { text, rows } = seedArchive(join(env.DATA_DIR, ARCHIVE), 100 * 1024 * 1024, Date.now() - 86_400_000);
    const server = await servers.start(env);

    const poll = pollHealthz(server.url);
    const line = await logLine(server, 'compressed file', 120_000);
    const latencies = await poll.stop();
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
    const max = latencies.at(-1) ?? 0;
    console.log(`compression: ${text.length} bytes → ${String(line.compressed_bytes)}; /healthz answered ${latencies.length} times meanwhile, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
    // Many answers while it ran, none held up the way a synchronous deflate of 100 MB (seconds) would.
    expect(latencies.length).toBeGreaterThan(20);
    expect(max).toBeLessThan(1000);
    expect(line).toMatchObject({ level: 30, file: ARCHIVE, bytes: text.length });
    expect(text.length).toBeGreaterThanOrEqual(100 * 1024 * 1024);

    expect(readdirSync(env.DATA_DIR).filter((name) => name.startsWith('data'))).toEqual([`${ARCHIVE}.gz`]);
    const stored = statSync(join(env.DATA_DIR, `${ARCHIVE}.gz`)).size;
    expect(stored).toBe(line.compressed_bytes);
    const listing = (await (await fetch(`${server.url}/streams`)).json()) as { streams: Array<{ bytes: number; files: Array<{ name: string; bytes: number }> }> };
    expect(listing.streams[0]?.files).toEqual([expect.objectContaining({ name: `${ARCHIVE}.gz`, bytes: stored })]);
    expect(listing.streams[0]?.bytes).toBe(stored);
    expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/\ncompress_files_total 1\n/);

    const download = Buffer.from(await (await fetch(`${server.url}/streams/data/csv`)).arrayBuffer());
    expect(download.length).toBe(text.length);
    expect(sha256(download)).toBe(sha256(text));
    console.log(`compression: the download of the .gz gave back all ${rows} rows, byte for byte`);
  }, 180_000);

  it('compresses an archive as soon as a new key makes it, and the download reads it beside the current file', async () => {
    const env = serverEnv(dir.path, { STREAMS: 'data', COMPRESS_CLOSED: 'gzip' });
    const server = await servers.start(env);
    const post = (body: object) => fetch(`${server.url}/data?ack=durable`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post({ a: 1 })).status).toBe(201);
    expect((await post({ a: 2, b: 'new key' })).status).toBe(201);
    const line = await logLine(server, 'compressed file');
    expect(String(line.file)).toMatch(/^data\.\d{8}T\d{6}Z\.csv$/);
    const names = readdirSync(env.DATA_DIR).filter((name) => name.startsWith('data')).sort();
    expect(names).toEqual([`${String(line.file)}.gz`, 'data.csv'].sort());
    expect(await (await fetch(`${server.url}/streams/data/csv`)).text()).toMatch(/^received_at,a,b\n[^\n]+Z,1,\n[^\n]+Z,2,new key\n$/);
  });

  it('after a restart the dashboard restores its points from a .gz, and rows written since go beside it', async () => {
    const env = serverEnv(dir.path, { STREAMS: 'data', COMPRESS_CLOSED: 'gzip', CSV_ROTATE: 'none' });
    mkdirSync(env.DATA_DIR, { recursive: true });
    const newest = Date.now() - 60_000;
    const { rows } = seedArchive(join(env.DATA_DIR, ARCHIVE), 40_000, newest);
    let server = await servers.start(env);
    await logLine(server, 'compressed file');
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(join(env.DATA_DIR, ARCHIVE))).toBe(false);

    server = await servers.start(env);
    const restored = await logLine(server, 'dashboard points restored');
    expect(restored.rows).toBe(rows);
    const state = (await (await fetch(`${server.url}/dashboard/state`)).json()) as DashboardState;
    const data = state.streams.find((s) => s.stream === 'data');
    expect(data?.last_received).toBe(new Date(newest).toISOString());
    expect(data?.fields.map((field) => field.name)).toEqual(['temperature', 'humidity', 'pressure', 'battery']);

    const res = await fetch(`${server.url}/data?ack=durable`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ temperature: 1 }) });
    expect(res.status).toBe(201);
    const csv = await (await fetch(`${server.url}/streams/data/csv`)).text();
    const lines = csv.trimEnd().split('\n');
    expect(lines).toHaveLength(rows + 2);
    expect(lines[0]).toBe('received_at,temperature,humidity,pressure,battery');
    expect(lines.at(-1)).toMatch(/^\d{4}-.*Z,1,,,$/);
  }, 60_000);
});
