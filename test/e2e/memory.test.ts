/**
 * Memory (SPEC section 11): with every limit at its default, the server's RSS
 * stays below 250 MB (the PM2 config's max_memory_restart) with the queue
 * full of the largest rows, a stalled writer retrying, IDEMPOTENCY_MAX_KEYS
 * keys of 128 characters and HISTORY_MAX entries.
 *
 *   start (defaults, npm start's node flags) ─► 100,000 keyed requests to data2 (kept: accepted)
 *     ─► data.csv made a directory: every write to it fails (EISDIR), the writer stalls
 *     ─► fill the queue through /data until 503 ─► the first key still replays
 *     ─► 1,000 requests with long payloads (history) ─► two more full-queue retries
 *     ─► peak RSS (VmHWM, and sampled VmRSS) and /metrics process_resident_memory_bytes
 *
 * "The largest rows" two ways, a server each: the longest row (one cell of
 * nearly MAX_REQUEST_BYTES) and the widest (1,024 short cells, as many rows
 * as a body holds), which costs far more memory per queued byte. Filling
 * stops early if RSS passes ABORT_MB, so a regression fails fast.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { answers200, freePort, pool } from '../support/http-client.js';
import { MAIN, ROOT } from '../support/paths.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const BOUND_MB = 250;
/** Filling stops once RSS is this far past the bound: the test has failed, no need to use more. */
const ABORT_MB = 3 * BOUND_MB;
const KEYS = 100_000; // IDEMPOTENCY_MAX_KEYS' default
const KEY_LENGTH = 128;
const HISTORY_MAX = 1000;
const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_COLUMNS = 1024;

/**
 * The node flags of package.json's "start" script, which the systemd unit and
 * the PM2 config share (test/deploy pins them there). Passed as arguments:
 * NODE_OPTIONS does not take some of them (--no-maglev).
 */
const START_FLAGS = ((): string[] => {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = scripts.start.split(/\s+/);
  return words.slice(1, words.indexOf('dist/main.js'));
})();

const dir = useTempDir();
let agent: Agent | undefined;
let server: { child: ChildProcess; exited: Promise<void> } | undefined;
afterEach(async () => {
  agent?.destroy();
  agent = undefined;
  if (server !== undefined && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server?.exited;
  server = undefined;
});

/** Starts the built server as npm start runs it (START_FLAGS) on a free port, and waits until /healthz answers. */
async function startServer(env: Record<string, string>): Promise<{ port: number; pid: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, [...START_FLAGS, MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  server = { child, exited: new Promise((resolve) => child.once('exit', () => resolve())) };
  await waitFor(async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited during start-up:\n${stderr}`);
    return answers200(`http://127.0.0.1:${port}/healthz`);
  }, 'the server to answer /healthz');
  return { port, pid: child.pid as number };
}

/** kB figures from /proc/<pid>/status, in MB. */
function procMemory(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on a keep-alive connection (fetch is slower at 100,000 requests). */
function send(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        agent,
        headers: body === undefined ? headers : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A key of exactly KEY_LENGTH characters, distinct per i. */
const keyOf = (i: number): string => `${'k'.repeat(KEY_LENGTH - 10)}${String(i).padStart(10, '0')}`;

/** The longest row: one cell that fills the body. */
function longestRows(n: number): string {
  const prefix = `{"n":${n},"text":"`;
  return `${prefix}${'x'.repeat(MAX_REQUEST_BYTES - prefix.length - 2)}"}`;
}

/** The widest rows: MAX_COLUMNS short distinct cells each, as many readings as fit in the body. */
function widestRows(n: number): string {
  const readings: string[] = [];
  let size = 2;
  for (let r = 0; ; r++) {
    const cells: string[] = [];
    for (let c = 0; c < MAX_COLUMNS; c++) cells.push(`"${c.toString(36)}":"${(((n * 1000 + r) * MAX_COLUMNS + c) * 7).toString(36)}"`);
    const reading = `{${cells.join(',')}}`;
    if (size + reading.length + 1 > MAX_REQUEST_BYTES) break;
    readings.push(reading);
    size += reading.length + 1;
  }
  return `[${readings.join(',')}]`;
}

const SHAPES = [
  ['the longest rows (one cell of about 1 MiB)', longestRows],
  ['the widest rows (1,024 short cells)', widestRows],
] as const;

describe('memory with every limit at its default (SPEC section 11)', () => {
  it.each(SHAPES)(
    `RSS stays below ${BOUND_MB} MB: queue full of %s, writer stalled and retrying, ${KEYS} keys of ${KEY_LENGTH} characters, ${HISTORY_MAX} history entries`,
    { timeout: 180_000 },
    async (what, rowsOf) => {
      const dataDir = join(dir.path, 'data');
      const { port, pid } = await startServer({ DATA_DIR: dataDir, LOG_DIR: join(dir.path, 'logs'), LOG_LEVEL: 'warn' });
      agent = new Agent({ keepAlive: true, maxSockets: 64 });
      let peakMb = 0;
      const sampler = setInterval(() => {
        peakMb = Math.max(peakMb, procMemory(pid).rssMb);
      }, 50);
      try {
        const started = Date.now();

        // Every key accepted, so every key is kept (a refused request's key is released).
        const keyStatuses = await pool(KEYS, 64, async (i) => (await send(port, 'POST', '/data2', `{"i":${i}}`, { 'Idempotency-Key': keyOf(i) })).status);
        expect(keyStatuses.filter((status) => status !== 202)).toEqual([]);
        const afterKeys = procMemory(pid);

        // The stall: data.csv cannot be opened (EISDIR), attempt after attempt; data2 goes on.
        mkdirSync(join(dataDir, 'data.csv'));
        let filled = 0;
        let refused = false;
        let aborted = false;
        for (let n = 0; !refused && !aborted; n++) {
          const { status, body } = await send(port, 'POST', '/data', rowsOf(n));
          if (status === 202) filled++;
          else if (status === 503) refused = true;
          else throw new Error(`filling the queue: ${status} ${body}`);
          aborted = procMemory(pid).rssMb > ABORT_MB;
        }
        const metrics = async () => JSON.parse((await send(port, 'GET', '/metrics?format=json')).body) as Record<string, number>;
        const full = await metrics();

        // The oldest of the 100,000 keys is still remembered: none was pushed out.
        const replay = await send(port, 'POST', '/data2', '{"i":0}', { 'Idempotency-Key': keyOf(0) });
        expect(replay.headers['idempotent-replayed']).toBe('true');

        // A full history: the newest HISTORY_MAX requests carry long payloads (refused: the queue is full).
        const payload = JSON.stringify({ note: '€'.repeat(1990) });
        await pool(HISTORY_MAX, 16, () => send(port, 'POST', '/data', payload));

        // The stalled writer retries the full queue every WRITE_BACKOFF_MAX_SEC: see two of them.
        const errorsBefore = (await metrics()).write_error_total as number;
        await waitFor(async () => ((await metrics()).write_error_total as number) >= errorsBefore + 2, 'two retries of the full queue', 30_000);
        const readyz = JSON.parse((await send(port, 'GET', '/readyz')).body) as { checks: { writer: { ok: boolean } } };
        const history = JSON.parse((await send(port, 'GET', `/history/json?limit=${HISTORY_MAX}`)).body) as { entries: Array<{ payload: string }> };
        const scraped = Number(/^process_resident_memory_bytes (\S+)$/m.exec((await send(port, 'GET', '/metrics')).body)?.[1]) / 2 ** 20;
        const end = procMemory(pid);
        peakMb = Math.max(peakMb, end.rssMb);

        console.log(
          `memory, ${what} (node ${process.version} ${START_FLAGS.join(' ')}): peak RSS ${end.hwmMb.toFixed(0)} MB (VmHWM; sampled ${peakMb.toFixed(0)} MB), ` +
            `${afterKeys.rssMb.toFixed(0)} MB after the keys (peak ${afterKeys.hwmMb.toFixed(0)} MB), now ${end.rssMb.toFixed(0)} MB, ` +
            `/metrics ${scraped.toFixed(0)} MB; queue ${full.queue_length} rows of ${filled} requests${aborted ? ` (filling stopped past ${ABORT_MB} MB)` : ''}, ` +
            `${KEYS} keys, ${history.entries.length} history entries; ${((Date.now() - started) / 1000).toFixed(1)} s`,
        );
        expect(end.hwmMb, 'peak RSS (VmHWM), MB').toBeLessThan(BOUND_MB);
        expect(scraped, 'process_resident_memory_bytes, MB').toBeLessThan(BOUND_MB);
        expect(refused, 'the queue answered 503 once full').toBe(true);
        expect(readyz.checks.writer.ok).toBe(false);
        expect(history.entries).toHaveLength(HISTORY_MAX);
        expect(history.entries.every((entry) => entry.payload.length === 500)).toBe(true);
      } finally {
        clearInterval(sampler);
      }
    },
  );
});
