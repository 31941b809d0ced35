#!/usr/bin/env node
/**
 * Benchmark: sensor-ingest against a reference server (bench/reference-server.mjs,
 * plain node:http doing the least the job needs) on this machine, side by side
 * in one run, so the ratio says how close sensor-ingest comes to Node's ceiling.
 *
 *   npm run bench                                  # both ack modes, 64 connections, 10 s each
 *   npm run bench -- --connections 16 --duration 5 --streams 4 --batch 10 --ack durable
 *   npm run bench -- --json                        # one JSON object on stdout
 *   npm run bench -- --cpu-prof                    # profile the sensor-ingest children
 *   node bench/profile-top.mjs <dir>/queued        # then: top self-time functions
 *
 * For each ack mode, the reference and then sensor-ingest each run in a fresh
 * temp dir (never both at once):
 *
 *   spawn ─► poll /healthz every 5 ms (spawn-to-healthy) ─► 1 s idle (idle RSS)
 *     ─► warm-up ─► measured load (autocannon) ─► SIGTERM ─► exit (drain)
 *     ─► count the rows in the CSV files against the ids acknowledged with 2xx
 *
 * Every request carries unique ids (one per reading), so a row acknowledged
 * but missing from the CSV after the drain is a lost row. RSS is VmRSS from
 * /proc for the server and any child processes (threads are in the process's
 * own VmRSS), sampled every 50 ms. fsyncs/s come from sensor-ingest's
 * write_fsync_duration_seconds_count and the reference's own counter. CPU
 * shares (from /proc) show whether the server or the load generator was the
 * limit, and whether other processes on the machine skewed a run (an
 * anomaly past 25 % of a core; ±20 % is accounting noise).
 *
 * Then a full-queue run: sensor-ingest in queued mode while this process holds
 * data.csv's lock (proper-lockfile, as another writer would), posting until
 * the answers turn 503, to see the peak RSS with the queue full; then the lock
 * is released and the rows are accounted for after the drain.
 *
 * Load goes to 127.0.0.1 only; all children are killed and temp dirs removed
 * at the end, also on error. Exits 1 if a row was lost or a run failed; goals
 * that are missed are reported, not failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import lockfile from 'proper-lockfile';
import { createRssSampler, machineBusySec, treeCpuSec } from './proc-stats.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOST = '127.0.0.1';
const KINDS = ['reference', 'sensor-ingest'];
const HEALTH_POLL_MS = 5;
const IDLE_SETTLE_MS = 1000;
/** How long the fill run keeps posting once the first 503 came, and its limit overall. */
const FILL_HOLD_MS = 2000;
const FILL_MAX_SEC = 20;

/** The goals of the issue, on the 2-core machine at 64 connections. */
const GOALS = {
  queuedRatio: 0.5,
  queuedP99Ms: 20,
  durableRatio: 0.3,
  durableP99Ms: 50,
  idleRssMb: 70,
  fullQueueRssMb: 150,
  healthyMs: 1000,
};

const USAGE = `usage: npm run bench -- [options]
  --connections N     concurrent connections (default 64)
  --duration SEC      measured seconds per run (default 10)
  --warmup SEC        warm-up seconds before each measurement, 0 for none (default 2)
  --streams N         streams to spread requests over: data, data2, ... (default 1)
  --batch N           readings per request, 1 sends an object, more an array (default 1)
  --ack MODE          queued, durable or both (default both)
  --only KIND         reference, sensor-ingest or both (default both)
  --skip-fill         skip the full-queue run
  --log-level LEVEL   LOG_LEVEL for sensor-ingest (default: its own default, info)
  --server-env K=V    an extra environment variable for sensor-ingest (repeatable)
  --cpu-prof          run the sensor-ingest children with node --cpu-prof
  --cpu-prof-dir DIR  where the profiles go (default: a new temp dir, kept and printed)
  --json              print one JSON object instead of tables
  --help`;

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '64' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    streams: { type: 'string', default: '1' },
    batch: { type: 'string', default: '1' },
    ack: { type: 'string', default: 'both' },
    only: { type: 'string', default: 'both' },
    'skip-fill': { type: 'boolean', default: false },
    'log-level': { type: 'string' },
    'server-env': { type: 'string', multiple: true, default: [] },
    'cpu-prof': { type: 'boolean', default: false },
    'cpu-prof-dir': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

function wholeNumber(name, min) {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < min) usageError(`--${name} must be a whole number of at least ${min}, got '${args[name]}'`);
  return value;
}
function oneOf(name, allowed) {
  if (!allowed.includes(args[name])) usageError(`--${name} must be one of ${allowed.join(', ')}, got '${args[name]}'`);
  return args[name];
}
function usageError(message) {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}

const options = {
  connections: wholeNumber('connections', 1),
  durationSec: wholeNumber('duration', 1),
  warmupSec: wholeNumber('warmup', 0),
  streams: wholeNumber('streams', 1),
  batch: wholeNumber('batch', 1),
  ack: oneOf('ack', ['queued', 'durable', 'both']),
  only: oneOf('only', ['reference', 'sensor-ingest', 'both']),
  fill: !args['skip-fill'],
  logLevel: args['log-level'],
  serverEnv: Object.fromEntries(
    args['server-env'].map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) usageError(`--server-env takes KEY=VALUE, got '${pair}'`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  ),
  cpuProf: args['cpu-prof'],
};
const modes = options.ack === 'both' ? ['queued', 'durable'] : [options.ack];
const kinds = options.only === 'both' ? KINDS : [options.only];
const streamNames = Array.from({ length: options.streams }, (_, i) => (i === 0 ? 'data' : `data${i + 1}`));
const progress = (message) => process.stderr.write(`bench: ${message}\n`);
const anomalies = [];

// ---------------------------------------------------------------- clean-up

const children = new Set();
const workDirs = new Set();
const heldLocks = new Set();
let cleanedUp = false;

async function cleanUp() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const release of heldLocks) await release().catch(() => {});
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    progress(`${signal}: stopping`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Builds dist/ when it is missing or older than a source file. */
function buildIfNeeded() {
  const entry = join(ROOT, 'dist', 'main.js');
  let builtAt = 0;
  try {
    builtAt = statSync(entry).mtimeMs;
  } catch {}
  const newest = (dir) =>
    readdirSync(dir, { withFileTypes: true }).reduce((latest, item) => {
      const path = join(dir, item.name);
      return Math.max(latest, item.isDirectory() ? newest(path) : statSync(path).mtimeMs);
    }, 0);
  const sourcesAt = Math.max(newest(join(ROOT, 'src')), statSync(join(ROOT, 'tsconfig.build.json')).mtimeMs);
  if (builtAt > sourcesAt) return;
  progress('building (npm run build)…');
  // stdout to stderr, so --json output stays one object.
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (build.status !== 0) throw new Error('npm run build failed');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** One GET on a fresh connection; resolves to { status, body }. */
function get(port, path, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** A Prometheus sample's value from text exposition, or NaN. */
function metricValue(text, name) {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return match === null ? Number.NaN : Number(match[1]);
}

// ---------------------------------------------------------------- servers

/**
 * Starts one server in a fresh temp dir and waits for its first 200 from
 * /healthz. Returns its handle, with `healthyMs` from spawn to that answer.
 */
async function startServer(kind, mode, label) {
  const work = mkdtempSync(join(tmpdir(), `sensor-ingest-bench-${kind}-${label}-`));
  workDirs.add(work);
  const dataDir = join(work, 'data');
  const port = await freePort();
  const env = { PATH: process.env.PATH, PORT: String(port), HOST, DATA_DIR: dataDir, LOG_DIR: join(work, 'logs') };
  if (mode === 'durable') env.ACK_MODE = 'durable';
  const nodeArgs = [];
  let entry;
  if (kind === 'reference') {
    entry = join(ROOT, 'bench', 'reference-server.mjs');
  } else {
    entry = join(ROOT, 'dist', 'main.js');
    // The same node flags as `npm start`, the systemd unit and the PM2 config.
    nodeArgs.push('--max-semi-space-size=4');
    // The server's default STREAMS (data, data2, data3, data4) cover up to 4.
    if (options.streams > 4) env.STREAMS = streamNames.join(',');
    if (options.logLevel !== undefined) env.LOG_LEVEL = options.logLevel;
    Object.assign(env, options.serverEnv);
    if (options.cpuProf) {
      const dir = join(profileDir, label);
      mkdirSync(dir, { recursive: true });
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
  }

  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, entry], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));

  let healthyMs;
  while (healthyMs === undefined) {
    if (gone) throw new Error(`${kind} exited before it was healthy: ${stderr.trim() || '(no stderr)'}`);
    if (performance.now() - spawnedAt > 30_000) throw new Error(`${kind} was not healthy within 30 s: ${stderr.trim()}`);
    try {
      if ((await get(port, '/healthz', 500)).status === 200) healthyMs = performance.now() - spawnedAt;
    } catch {}
    if (healthyMs === undefined) await sleep(HEALTH_POLL_MS);
  }
  const rss = createRssSampler(child.pid);
  return { kind, mode, port, dataDir, child, exited, rss, healthyMs, stderr: () => stderr };
}

/** fsyncs so far, from the server's own counter. */
async function fsyncCount(server) {
  const { body } = await get(server.port, '/metrics');
  return metricValue(body, server.kind === 'reference' ? 'reference_fsync_total' : 'write_fsync_duration_seconds_count');
}

/** SIGTERM, then wait for the exit (SIGKILL after 60 s); returns the exit and how long the drain took. */
async function stopServer(server) {
  const sentAt = performance.now();
  server.child.kill('SIGTERM');
  const killer = setTimeout(() => server.child.kill('SIGKILL'), 60_000);
  const { code, signal } = await server.exited;
  clearTimeout(killer);
  server.rss.stop();
  children.delete(server.child);
  return { exitCode: code, exitSignal: signal, drainMs: performance.now() - sentAt };
}

// ---------------------------------------------------------------- load

/**
 * The ids a run sent and which were acknowledged. Ids are whole numbers, one
 * per reading, unique across the whole bench.
 */
let nextId = 1;
let nextRequest = 0;

function readingJson(id) {
  return `{"id":${id},"t":${(20 + (id % 500) / 100).toFixed(2)},"h":${id % 100},"note":"bench"}`;
}

function bodyFor(firstId) {
  if (options.batch === 1) return readingJson(firstId);
  let body = '[';
  for (let i = 0; i < options.batch; i++) body += `${i === 0 ? '' : ','}${readingJson(firstId + i)}`;
  return `${body}]`;
}

/**
 * One autocannon run against `server`. Each request gets the next ids and the
 * next stream; a 2xx answer records its first id in `ackedFirstIds`.
 * `onStatus(status, instance)` may stop the run early.
 */
function load(server, durationSec, ackedFirstIds, onStatus) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://${HOST}:${server.port}`,
        connections: options.connections,
        pipelining: 1, // one request in flight per connection, so its context names it
        duration: durationSec,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        requests: [
          {
            setupRequest(req, context) {
              context.firstId = nextId;
              nextId += options.batch;
              req.path = `/${streamNames[nextRequest++ % streamNames.length]}`;
              req.body = bodyFor(context.firstId);
              return req;
            },
            onResponse(status, _body, context) {
              if (status >= 200 && status < 300) ackedFirstIds.push(context.firstId);
              onStatus?.(status, instance);
            },
          },
        ],
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
}

/** Every .csv in DATA_DIR: rows, and the ids found in their `id` column. */
function countRows(dataDir) {
  const found = new Set();
  let rows = 0;
  let torn = 0;
  const otherFiles = [];
  let names = [];
  try {
    names = readdirSync(dataDir);
  } catch {}
  for (const name of names) {
    if (!name.endsWith('.csv')) {
      if (!name.startsWith('.')) otherFiles.push(name);
      continue;
    }
    const lines = readFileSync(join(dataDir, name), 'utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    else torn++; // the file does not end in a whole row
    const idColumn = (lines[0] ?? '').split(',').indexOf('id');
    for (let i = 1; i < lines.length; i++) {
      rows++;
      const id = Number(lines[i].split(',')[idColumn]);
      if (Number.isInteger(id)) found.add(id);
      else torn++;
    }
  }
  return { rows, found, torn, otherFiles };
}

/** Rows acknowledged, found, lost, duplicated, after the server has exited. */
function account(dataDir, ackedFirstIds) {
  const { rows, found, torn, otherFiles } = countRows(dataDir);
  let acked = 0;
  let lost = 0;
  for (const first of ackedFirstIds) {
    for (let id = first; id < first + options.batch; id++) {
      acked++;
      if (!found.has(id)) lost++;
    }
  }
  return { rowsAcked: acked, rowsFound: rows, rowsLost: lost, duplicates: rows - found.size, unackedFound: found.size - (acked - lost), torn, otherFiles };
}

function summarizeLoad(result) {
  const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([status, { count }]) => [status, count]));
  return {
    requestsPerSec: result.requests.total / result.duration,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    latencyMaxMs: result.latency.max,
    requests: result.requests.total,
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
    durationSec: result.duration,
  };
}

// ---------------------------------------------------------------- runs

/** One server in one ack mode: start, idle, warm up, measure, drain, account. */
async function measure(kind, mode) {
  progress(`${kind}, ${mode}: starting`);
  const server = await startServer(kind, mode, mode);
  try {
    await sleep(IDLE_SETTLE_MS);
    const idleRssMb = server.rss.now();
    const ackedFirstIds = [];
    if (options.warmupSec > 0) await load(server, options.warmupSec, ackedFirstIds);
    const fsyncsBefore = await fsyncCount(server);
    const startedAt = performance.now();
    const serverCpuBefore = treeCpuSec(server.child.pid);
    const benchCpuBefore = process.cpuUsage();
    const machineBefore = machineBusySec();
    progress(`${kind}, ${mode}: ${options.durationSec} s at ${options.connections} connections`);
    const result = await load(server, options.durationSec, ackedFirstIds);
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const serverCpuSec = treeCpuSec(server.child.pid) - serverCpuBefore;
    const machineSec = machineBusySec() - machineBefore;
    const fsyncsAfter = await fsyncCount(server);
    const fsyncSec = (performance.now() - startedAt) / 1000;
    const stop = await stopServer(server);
    const loadStats = summarizeLoad(result);
    const rows = account(server.dataDir, ackedFirstIds);
    const run = {
      kind,
      mode,
      ...loadStats,
      rowsPerSec: loadStats.ok2xx * options.batch / loadStats.durationSec,
      fsyncsPerSec: (fsyncsAfter - fsyncsBefore) / fsyncSec,
      // Share of one core over the measured run: the server (all its threads) and this load generator.
      serverCpuPct: (100 * serverCpuSec) / fsyncSec,
      loadGenCpuPct: (100 * (benchCpu.user + benchCpu.system)) / 1e6 / fsyncSec,
      // Everything else on the machine (other processes, the kernel's own work): it should be near 0.
      otherCpuPct: (100 * (machineSec - serverCpuSec - (benchCpu.user + benchCpu.system) / 1e6)) / fsyncSec,
      rowsPerFsync: fsyncsAfter > fsyncsBefore ? (loadStats.ok2xx * options.batch) / (fsyncsAfter - fsyncsBefore) : null,
      ...rows,
      idleRssMb,
      peakRssMb: server.rss.peakMb(),
      healthyMs: server.healthyMs,
      ...stop,
    };
    noteAnomalies(run, server.stderr());
    return run;
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) await stopServer(server).catch(() => {});
  }
}

/**
 * sensor-ingest in queued mode with data.csv's lock held from outside, so
 * nothing can be written: post until the queue is full and answers turn 503,
 * keep posting a little, then release the lock and account for every row.
 */
async function fillQueue() {
  progress('sensor-ingest, full queue: starting');
  const server = await startServer('sensor-ingest', 'queued', 'fill');
  try {
    await sleep(IDLE_SETTLE_MS);
    const idleRssMb = server.rss.now();
    const release = await lockfile.lock(join(server.dataDir, 'data.csv'), {
      realpath: false,
      stale: 10_000,
      onCompromised: (error) => anomalies.push(`full queue: the held lock was compromised: ${error.message}`),
    });
    heldLocks.add(release);
    progress(`sensor-ingest, full queue: data.csv locked, posting until 503s (+${FILL_HOLD_MS / 1000} s)`);
    const ackedFirstIds = [];
    const fillStart = performance.now();
    let first503At;
    const result = await load(server, FILL_MAX_SEC, ackedFirstIds, (status, instance) => {
      if (status !== 503) return;
      first503At ??= performance.now();
      if (performance.now() - first503At >= FILL_HOLD_MS) instance.stop();
    });
    const { body } = await get(server.port, '/metrics');
    const queueLength = metricValue(body, 'write_queue_length');
    const queueMax = metricValue(body, 'write_queue_maxsize');
    const peakRssMb = server.rss.peakMb(fillStart);
    await release();
    heldLocks.delete(release);
    progress('sensor-ingest, full queue: lock released, draining');
    const stop = await stopServer(server);
    const loadStats = summarizeLoad(result);
    const rows = account(server.dataDir, ackedFirstIds);
    const run = {
      kind: 'sensor-ingest',
      mode: 'queued, data.csv locked',
      requests: loadStats.requests,
      ok2xx: loadStats.ok2xx,
      non2xx: loadStats.non2xx,
      errors: loadStats.errors,
      timeouts: loadStats.timeouts,
      statuses: loadStats.statuses,
      msTo503: first503At === undefined ? null : first503At - fillStart,
      queueLength,
      queueMax,
      ...rows,
      idleRssMb,
      peakRssMb,
      healthyMs: server.healthyMs,
      ...stop,
    };
    if (first503At === undefined) anomalies.push(`full queue: no 503 within ${FILL_MAX_SEC} s`);
    noteAnomalies(run, server.stderr(), { expect503: true });
    return run;
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) await stopServer(server).catch(() => {});
  }
}

function noteAnomalies(run, stderr, { expect503 = false } = {}) {
  const name = `${run.kind}, ${run.mode}`;
  if (run.otherCpuPct > 25) anomalies.push(`${name}: other processes used ${Math.round(run.otherCpuPct)} % of a core during the run; its numbers are not clean`);
  if (run.rowsLost > 0) anomalies.push(`${name}: ${run.rowsLost} acknowledged rows missing from the CSV`);
  if (run.duplicates > 0) anomalies.push(`${name}: ${run.duplicates} duplicated rows`);
  if (run.torn > 0) anomalies.push(`${name}: ${run.torn} torn or unreadable rows`);
  if (run.otherFiles.length > 0) anomalies.push(`${name}: unexpected files in DATA_DIR: ${run.otherFiles.join(', ')}`);
  if (run.exitCode !== 0) anomalies.push(`${name}: exit code ${run.exitCode ?? run.exitSignal} after SIGTERM`);
  if (run.errors > 0) anomalies.push(`${name}: ${run.errors} connection errors`);
  if (run.timeouts > 0) anomalies.push(`${name}: ${run.timeouts} request timeouts`);
  const unexpected = Object.entries(run.statuses).filter(([status]) => !/^2/.test(status) && !(expect503 && status === '503'));
  if (unexpected.length > 0) anomalies.push(`${name}: non-2xx answers ${unexpected.map(([s, n]) => `${s}×${n}`).join(', ')}`);
  if (stderr.trim() !== '') anomalies.push(`${name}: stderr: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
}

// ---------------------------------------------------------------- report

function goals(runs, fill) {
  const si = (mode) => runs[mode]?.['sensor-ingest'];
  const ratio = (mode) => runs[mode]?.ratio ?? null;
  const siRuns = [...modes.map(si), fill].filter(Boolean);
  const list = [];
  const add = (goal, value, pass, shown) => list.push({ goal, value, pass: value === null || value === undefined ? null : pass, shown });
  const f = (x, digits = 2) => (x === null || x === undefined ? 'n/a' : x.toFixed(digits));
  add(`queued throughput ≥ ${GOALS.queuedRatio} × reference`, ratio('queued'), ratio('queued') >= GOALS.queuedRatio, `${f(ratio('queued'))} ×`);
  add(`queued p99 ≤ ${GOALS.queuedP99Ms} ms`, si('queued')?.latencyP99Ms, si('queued')?.latencyP99Ms <= GOALS.queuedP99Ms, `${f(si('queued')?.latencyP99Ms, 0)} ms`);
  add(`durable throughput ≥ ${GOALS.durableRatio} × reference`, ratio('durable'), ratio('durable') >= GOALS.durableRatio, `${f(ratio('durable'))} ×`);
  add(`durable p99 ≤ ${GOALS.durableP99Ms} ms`, si('durable')?.latencyP99Ms, si('durable')?.latencyP99Ms <= GOALS.durableP99Ms, `${f(si('durable')?.latencyP99Ms, 0)} ms`);
  const idle = siRuns.length > 0 ? Math.max(...siRuns.map((r) => r.idleRssMb)) : null;
  add(`idle RSS ≤ ${GOALS.idleRssMb} MB`, idle, idle <= GOALS.idleRssMb, `${f(idle, 1)} MB (largest of ${siRuns.length} starts)`);
  add(`peak RSS with a full queue ≤ ${GOALS.fullQueueRssMb} MB`, fill?.peakRssMb, fill?.peakRssMb <= GOALS.fullQueueRssMb, `${f(fill?.peakRssMb, 1)} MB`);
  const healthy = siRuns.length > 0 ? Math.max(...siRuns.map((r) => r.healthyMs)) : null;
  add(`spawn to healthy ≤ ${GOALS.healthyMs} ms`, healthy, healthy <= GOALS.healthyMs, `${f(healthy, 0)} ms (slowest of ${siRuns.length} starts)`);
  const lost = siRuns.length > 0 ? siRuns.reduce((sum, r) => sum + r.rowsLost, 0) : null;
  add('0 rows lost', lost, lost === 0, `${lost ?? 'n/a'} lost (all sensor-ingest runs)`);
  return list;
}

function printTables(report) {
  const int = (x) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
  const dec = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
  const lines = [];
  const row = (label, cells) => lines.push(`  ${label.padEnd(24)}${cells.map((c) => String(c).padStart(16)).join('')}`);
  const { config } = report;
  lines.push(
    `sensor-ingest bench: ${config.connections} connections, ${config.durationSec} s measured (+${config.warmupSec} s warm-up) per run, ` +
      `${config.streams} stream(s), batch ${config.batch}, node ${process.version}, ${config.cpus} CPUs, ${HOST}`,
  );
  for (const mode of modes) {
    const pair = report.runs[mode];
    const runs = kinds.map((kind) => pair[kind]);
    lines.push('', `${mode} (${mode === 'queued' ? '202 once queued' : '201 after the covering fsync'})`);
    row('', [...kinds, ...(pair.ratio === null ? [] : ['ratio'])]);
    const each = (label, pick, ratio) => row(label, [...runs.map(pick), ...(pair.ratio === null ? [] : [ratio ?? ''])]);
    each('requests/s', (r) => int(r.requestsPerSec), dec(pair.ratio, 2));
    if (options.batch > 1) each('rows/s', (r) => int(r.rowsPerSec), dec(pair.rowsRatio, 2));
    each('latency p50 / p99', (r) => `${dec(r.latencyP50Ms, 0)} / ${dec(r.latencyP99Ms, 0)} ms`);
    each('latency max', (r) => `${dec(r.latencyMaxMs, 0)} ms`);
    each('2xx accepted', (r) => `${int(r.ok2xx)} req`);
    each('non-2xx/errors/timeouts', (r) => `${int(r.non2xx)}/${int(r.errors)}/${int(r.timeouts)}`);
    each('rows acked (incl. warm-up)', (r) => int(r.rowsAcked));
    each('rows found after drain', (r) => int(r.rowsFound));
    each('rows lost', (r) => int(r.rowsLost));
    each('duplicates', (r) => int(r.duplicates));
    each('fsyncs/s', (r) => int(r.fsyncsPerSec));
    each('rows per fsync', (r) => dec(r.rowsPerFsync));
    each('server CPU (1 core=100%)', (r) => `${int(r.serverCpuPct)} %`);
    each('load generator CPU', (r) => `${int(r.loadGenCpuPct)} %`);
    each('other CPU on the machine', (r) => `${int(r.otherCpuPct)} %`);
    each('idle RSS', (r) => `${dec(r.idleRssMb)} MB`);
    each('peak RSS', (r) => `${dec(r.peakRssMb)} MB`);
    each('spawn to healthy', (r) => `${int(r.healthyMs)} ms`);
    each('SIGTERM to exit', (r) => `${int(r.drainMs)} ms (${r.exitCode ?? r.exitSignal})`);
  }
  const { fill } = report;
  if (fill !== null) {
    lines.push('', 'full queue (sensor-ingest, queued, data.csv locked from outside while posting)');
    const one = (label, value) => lines.push(`  ${label.padEnd(24)}${String(value).padStart(16)}`);
    one('first 503 after', fill.msTo503 === null ? 'never' : `${int(fill.msTo503)} ms`);
    one('queue at the end', `${int(fill.queueLength)} / ${int(fill.queueMax)} rows`);
    one('answers', Object.entries(fill.statuses).map(([s, n]) => `${s}×${n}`).join(' '));
    one('spawn to healthy', `${int(fill.healthyMs)} ms`);
    one('idle RSS', `${dec(fill.idleRssMb)} MB`);
    one('peak RSS, full queue', `${dec(fill.peakRssMb)} MB`);
    one('rows acked / found', `${int(fill.rowsAcked)} / ${int(fill.rowsFound)}`);
    one('rows lost', int(fill.rowsLost));
    one('release + SIGTERM to exit', `${int(fill.drainMs)} ms (${fill.exitCode ?? fill.exitSignal})`);
  }
  lines.push('', 'goals (2-core machine, loopback, 64 connections)');
  for (const goal of report.goals) {
    lines.push(`  ${goal.pass === null ? 'n/a ' : goal.pass ? 'PASS' : 'MISS'}  ${goal.goal.padEnd(42)} ${goal.shown}`);
  }
  if (config.connections !== 64) lines.push(`  (measured at ${config.connections} connections, not 64)`);
  lines.push('', anomalies.length === 0 ? 'anomalies: none' : `anomalies:\n${anomalies.map((a) => `  - ${a}`).join('\n')}`);
  if (report.cpuProfileDir !== null) {
    lines.push('', `CPU profiles (sensor-ingest children): ${report.cpuProfileDir}`, `  node bench/profile-top.mjs ${join(report.cpuProfileDir, modes[0])}`);
  }
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------- main

let profileDir = null;
let exitCode = 0;
try {
  buildIfNeeded();
  if (options.cpuProf) {
    profileDir = args['cpu-prof-dir'] ?? mkdtempSync(join(tmpdir(), 'sensor-ingest-cpuprof-'));
    mkdirSync(profileDir, { recursive: true });
  }
  const runs = {};
  for (const mode of modes) {
    runs[mode] = {};
    for (const kind of kinds) runs[mode][kind] = await measure(kind, mode);
    const pair = runs[mode];
    const both = pair.reference !== undefined && pair['sensor-ingest'] !== undefined;
    pair.ratio = both ? pair['sensor-ingest'].requestsPerSec / pair.reference.requestsPerSec : null;
    pair.rowsRatio = both ? pair['sensor-ingest'].rowsPerSec / pair.reference.rowsPerSec : null;
  }
  const fill = options.fill && kinds.includes('sensor-ingest') ? await fillQueue() : null;
  const report = {
    config: {
      connections: options.connections,
      durationSec: options.durationSec,
      warmupSec: options.warmupSec,
      streams: options.streams,
      batch: options.batch,
      ack: options.ack,
      logLevel: options.logLevel ?? null,
      serverEnv: options.serverEnv,
      cpuProf: options.cpuProf,
      node: process.version,
      cpus: cpus().length,
    },
    runs,
    fill,
    goals: [],
    anomalies,
    cpuProfileDir: profileDir,
  };
  report.goals = goals(runs, fill);
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else printTables(report);
  const lost = [...Object.values(runs).flatMap((pair) => KINDS.map((k) => pair[k]).filter(Boolean)), fill].some((run) => run?.rowsLost > 0);
  if (lost) exitCode = 1;
} catch (error) {
  progress(`failed: ${error.stack ?? error}`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
