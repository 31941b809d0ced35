#!/usr/bin/env node
/**
 * Benchmark: sensor-ingest against two reference servers on this machine,
 * side by side in one run, so the ratios say how close sensor-ingest comes to
 * what Node and what Express allow:
 *
 *   reference      plain node:http (bench/reference-server.mjs)
 *   express        bare Express 5 (bench/express-reference.mjs)
 *   sensor-ingest  dist/main.js with the node flags of `npm start` (read from package.json)
 *
 * Both references share one write path (bench/reference-write-path.mjs: parse
 * JSON, CSV line, per-file buffer, a flusher doing one write + one fsync back
 * to back, 202 queued / 201 after the fsync), so they differ only in the HTTP
 * layer: "bare Express / plain" is Express's own cost, "sensor-ingest / bare
 * Express" is how close sensor-ingest comes to Express's limit.
 *
 *   npm run bench                                  # both ack modes, 64 connections, 10 s each
 *   npm run bench -- --connections 16 --duration 5 --streams 4 --batch 10 --ack durable
 *   npm run bench -- --only express,sensor-ingest  # some of the kinds only
 *   npm run bench -- --node 24                     # servers on Node 24 from the npm registry (.ci/node-from-npm)
 *   npm run bench -- --log-levels --ack queued     # also: what LOG_LEVEL=info costs against warn
 *   npm run bench -- --json                        # one JSON object on stdout
 *   npm run bench -- --cpu-prof                    # profile the sensor-ingest children
 *   node bench/profile-top.mjs <dir>/queued        # then: top self-time functions
 *   npm run bench -- --nats                        # forwarding to NATS JetStream: its cost and the delay
 *   npm run bench -- --nats --pairs 3 --e2e-rate 100 --e2e-duration 20
 *
 * For each ack mode, the plain reference, the bare Express reference and then
 * sensor-ingest each run in a fresh temp dir (never two at once), all on the
 * same node binary (--node; default the one running the bench):
 *
 *   spawn ─► poll /healthz every 5 ms (spawn-to-healthy) ─► 1 s idle (idle RSS)
 *     ─► warm-up ─► measured load (autocannon) ─► SIGTERM ─► exit (drain)
 *     ─► count the rows in the CSV files against the ids acknowledged with 2xx
 *
 * With --log-levels, sensor-ingest runs once more right after, at the other
 * of LOG_LEVEL=warn and LOG_LEVEL=info (its default is info; at info it logs
 * one line per request), and the report says what info costs:
 * 1 - requests/s at info ÷ requests/s at warn.
 *
 * Every request carries unique ids (one per reading), so a row acknowledged
 * but missing from the CSV after the drain is a lost row. RSS is VmRSS from
 * /proc for the server and any child processes (threads are in the process's
 * own VmRSS), sampled every 50 ms. fsyncs/s come from sensor-ingest's
 * write_fsync_duration_seconds_count and the references' own counter. CPU
 * shares (from /proc) show whether the server or the load generator was the
 * limit, and whether other processes on the machine skewed a run (an
 * anomaly past 25 % of a core; ±20 % is accounting noise).
 *
 * Then a full-queue run: sensor-ingest in queued mode while this process holds
 * data.csv's lock (proper-lockfile, as another writer would), posting until
 * the answers turn 503, to see the peak RSS with the queue full; then the lock
 * is released and the rows are accounted for after the drain.
 *
 * --nats measures forwarding instead (the "nats" section below says how):
 * rows/s with forwarding off and on, in interleaved pairs, against a
 * nats-server and a collector on the same machine, and the delay from a POST
 * to its row in the collector's central file.
 *
 * Load goes to 127.0.0.1 only; all children are killed and temp dirs removed
 * at the end, also on error. Exits 1 if a row was lost or a run failed (with
 * --nats also: a row missing or duplicated centrally); goals that are missed
 * are reported, not failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import lockfile from 'proper-lockfile';
import { HOST, freePort, get, parseOptions, quantileSorted, scriptNodeFlags, sleep } from './lib.mjs';
import { createRssSampler, machineBusySec, treeCpuSec } from './proc-stats.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The servers compared, in the order they run, with what each is. */
const KINDS = ['reference', 'express', 'sensor-ingest'];
const KIND_LABELS = { reference: 'plain node:http', express: 'bare Express 5', 'sensor-ingest': 'sensor-ingest' };
const ENTRIES = {
  reference: join(ROOT, 'bench', 'reference-server.mjs'),
  express: join(ROOT, 'bench', 'express-reference.mjs'),
  'sensor-ingest': join(ROOT, 'dist', 'main.js'),
};
const HEALTH_POLL_MS = 5;
const IDLE_SETTLE_MS = 1000;
/** How long the fill run keeps posting once the first 503 came, and its limit overall. */
const FILL_HOLD_MS = 2000;
const FILL_MAX_SEC = 20;

/** The goals of the issue (18), on the 2-core machine at 64 connections. */
const GOALS = {
  /** sensor-ingest's requests/s against bare Express's, queued and durable. */
  ratioToExpress: 0.9,
  /** sensor-ingest's p99, queued and durable; the issue asks for it on Node 24, the bench reports it on any. */
  p99Ms: 20,
  p99Node: 24,
  /** sensor-ingest's idle RSS by the major version of the node running it (see idleRssGoal). */
  idleRssMbByNode: { 20: 65, 24: 80 },
  healthyMs: 1000,
};

const USAGE = `usage: npm run bench -- [options]
  --connections N     concurrent connections (default 64)
  --duration SEC      measured seconds per run (default 10)
  --warmup SEC        warm-up seconds before each measurement, 0 for none (default 2)
  --streams N         streams to spread requests over: data, data2, ... (default 1)
  --batch N           readings per request, 1 sends an object, more an array (default 1)
  --ack MODE          queued, durable or both (default both)
  --only KINDS        reference (plain node:http), express (bare Express 5),
                      sensor-ingest, or several joined by commas (default all)
  --node PATH|MAJOR   the node binary that runs the servers, all kinds (default:
                      the one running the bench); a bare major such as 24 means
                      Node 24 from the npm registry (.ci/node-from-npm 24)
  --skip-fill         skip the full-queue run
  --log-level LEVEL   LOG_LEVEL for sensor-ingest (default: its own default, info)
  --log-levels        sensor-ingest once more at the other of LOG_LEVEL=warn and
                      info, right after its run in each ack mode: what info
                      request logging costs in throughput
  --server-env K=V    an extra environment variable for sensor-ingest (repeatable)
  --cpu-prof          run the sensor-ingest children with node --cpu-prof
  --cpu-prof-dir DIR  where the profiles go (default: a new temp dir, kept and printed)
  --json              print one JSON object instead of tables
  --nats              forwarding to NATS JetStream instead (see below); --only, --skip-fill do not apply
  --pairs N           --nats: forwarding off/on pairs, run interleaved (default 2)
  --e2e-rate N        --nats: readings per second in the delay run (default 50)
  --e2e-duration SEC  --nats: seconds of the delay run (default 10)
  --help

sensor-ingest runs with the node flags of package.json's "start" script (npm
start's), read from there; the references with none.

--nats starts a nats-server (NATS_SERVER, else nats-server on PATH or in
/usr/sbin) and a collector (dist/collect.js), then measures rows/s posted with
forwarding off and on (--ack queued unless --ack durable is given), pair by
pair, and the delay from POST to the row in the collector's central file.`;

const args = parseOptions(USAGE, {
  connections: { type: 'string', default: '64' },
  duration: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2' },
  streams: { type: 'string', default: '1' },
  batch: { type: 'string', default: '1' },
  ack: { type: 'string', default: 'both' },
  only: { type: 'string', default: 'all' },
  node: { type: 'string' },
  'skip-fill': { type: 'boolean', default: false },
  'log-level': { type: 'string' },
  'log-levels': { type: 'boolean', default: false },
  'server-env': { type: 'string', multiple: true, default: [] },
  'cpu-prof': { type: 'boolean', default: false },
  'cpu-prof-dir': { type: 'string' },
  json: { type: 'boolean', default: false },
  nats: { type: 'boolean', default: false },
  pairs: { type: 'string', default: '2' },
  'e2e-rate': { type: 'string', default: '50' },
  'e2e-duration': { type: 'string', default: '10' },
});

function wholeNumber(name, min) {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < min) usageError(`--${name} must be a whole number of at least ${min}, got '${args[name]}'`);
  return value;
}
function oneOf(name, allowed) {
  if (!allowed.includes(args[name])) usageError(`--${name} must be one of ${allowed.join(', ')}, got '${args[name]}'`);
  return args[name];
}
/** --only's comma-separated kinds, run in KINDS's order. */
function kindList(text) {
  const named = text.split(',').map((kind) => kind.trim());
  const unknown = named.filter((kind) => !KINDS.includes(kind));
  if (unknown.length > 0 || named.length === 0) usageError(`--only takes all or kinds among ${KINDS.join(', ')} joined by commas, got '${text}'`);
  return KINDS.filter((kind) => named.includes(kind));
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
  only: args.only === 'all' ? KINDS : kindList(args.only),
  fill: !args['skip-fill'],
  logLevel: args['log-level'],
  logLevels: args['log-levels'],
  serverEnv: Object.fromEntries(
    args['server-env'].map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) usageError(`--server-env takes KEY=VALUE, got '${pair}'`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  ),
  cpuProf: args['cpu-prof'],
  nats: args.nats,
  pairs: wholeNumber('pairs', 1),
  e2eRate: wholeNumber('e2e-rate', 1),
  e2eDurationSec: wholeNumber('e2e-duration', 1),
};
const modes = options.ack === 'both' ? ['queued', 'durable'] : [options.ack];
const kinds = options.only;
if (options.logLevels && !options.nats) {
  if (!kinds.includes('sensor-ingest')) usageError('--log-levels needs sensor-ingest among --only');
  if (options.logLevel !== undefined && !['warn', 'info'].includes(options.logLevel)) usageError(`--log-levels compares warn and info; --log-level must be one of them or left out, got '${options.logLevel}'`);
}
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
// The last resort (an exit that skipped cleanUp, such as an uncaught exception): no child outlives the bench.
process.once('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

// ---------------------------------------------------------------- helpers

/** Builds dist/ when it is missing or older than a source file. */
function buildIfNeeded() {
  const entry = join(ROOT, 'dist', 'main.js');
  let builtAt = 0;
  try {
    builtAt = statSync(entry).mtimeMs;
  } catch {
    // no dist yet: it is built below
  }
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

/**
 * Counts a child's pino log lines (JSON on its stdout) at WARN and worse, by
 * level and message: `warnings()` is { "WARN forward lagging": n, ... }.
 */
function scanWarnings(stdout) {
  const counts = {};
  let partial = '';
  const names = { 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
  stdout.setEncoding('utf8');
  stdout.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      const level = /"level":(40|50|60)[,}]/.exec(line);
      if (level === null) continue;
      const msg = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line.slice(0, 120);
      const err = /"err":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
      const key = `${names[level[1]]} ${msg}${err === undefined ? '' : ` (${err.slice(0, 160)})`}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  });
  return { warnings: () => ({ ...counts }) };
}

/**
 * The node binary that runs the servers: --node's path (or command on PATH),
 * or for a bare major the binary .ci/node-from-npm prints (it fetches
 * node-linux-<arch>@<major> from the npm registry into ~/.cache when missing);
 * without --node the one running the bench. Returns { path, version, major }.
 */
function resolveServerNode(wanted) {
  let path = process.execPath;
  if (wanted !== undefined && /^\d+$/.test(wanted)) {
    progress(`node ${wanted}: .ci/node-from-npm ${wanted}`);
    const fetched = spawnSync(join(ROOT, '.ci', 'node-from-npm'), [wanted], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 2] });
    path = fetched.stdout?.trim().split('\n').at(-1) ?? '';
    if (fetched.status !== 0 || path === '') throw new Error(`.ci/node-from-npm ${wanted} failed (exit ${fetched.status ?? fetched.signal})`);
  } else if (wanted !== undefined) {
    path = wanted;
  }
  const asked = spawnSync(path, ['--version'], { encoding: 'utf8' });
  const version = asked.stdout?.trim() ?? '';
  const major = Number(/^v(\d+)\./.exec(version)?.[1]);
  if (asked.status !== 0 || !Number.isInteger(major)) throw new Error(`--node ${wanted}: ${path} --version did not answer a node version (${asked.error?.message ?? (version || asked.stderr?.trim())})`);
  if (/^\d+$/.test(wanted ?? '') && major !== Number(wanted)) throw new Error(`--node ${wanted}: ${path} is node ${version}`);
  return { path, version, major };
}

/** The idle RSS goal for the servers' node: Node 24's from 24 on, else Node 20's. */
function idleRssGoal(major) {
  const forNode = major >= 24 ? 24 : 20;
  return { mb: GOALS.idleRssMbByNode[forNode], forNode };
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
 * `extraEnv` goes to sensor-ingest only (the --nats mode's NATS_URL, SITE_ID);
 * `scanLog` reads its stdout log for WARN and worse lines (`warnings()`).
 */
async function startServer(kind, mode, label, extraEnv = {}, { scanLog = false } = {}) {
  const work = mkdtempSync(join(tmpdir(), `sensor-ingest-bench-${kind}-${label}-`));
  workDirs.add(work);
  const dataDir = join(work, 'data');
  const port = await freePort();
  const env = { PATH: process.env.PATH, PORT: String(port), HOST, DATA_DIR: dataDir, LOG_DIR: join(work, 'logs') };
  if (mode === 'durable') env.ACK_MODE = 'durable';
  const nodeArgs = [];
  const entry = ENTRIES[kind];
  if (kind === 'sensor-ingest') {
    // The node flags of `npm start` (package.json), which the systemd unit and the PM2 config share.
    nodeArgs.push(...startFlags);
    // The server's default STREAMS (data, data2, data3, data4) cover up to 4.
    if (options.streams > 4) env.STREAMS = streamNames.join(',');
    if (options.logLevel !== undefined) env.LOG_LEVEL = options.logLevel;
    Object.assign(env, options.serverEnv, extraEnv);
    if (options.cpuProf) {
      const dir = join(profileDir, label);
      mkdirSync(dir, { recursive: true });
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
  }

  const spawnedAt = performance.now();
  const child = spawn(serverNode.path, [...nodeArgs, entry], { env, stdio: ['ignore', scanLog ? 'pipe' : 'ignore', 'pipe'] });
  children.add(child);
  const log = scanLog ? scanWarnings(child.stdout) : null;
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
    } catch {
      // not listening yet: poll again
    }
    if (healthyMs === undefined) await sleep(HEALTH_POLL_MS);
  }
  const rss = createRssSampler(child.pid);
  return { kind, mode, port, dataDir, child, exited, rss, healthyMs, stderr: () => stderr, warnings: () => log?.warnings() ?? {} };
}

/** fsyncs so far, from the server's own counter. */
async function fsyncCount(server) {
  const { body } = await get(server.port, '/metrics');
  return metricValue(body, server.kind === 'sensor-ingest' ? 'write_fsync_duration_seconds_count' : 'reference_fsync_total');
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
  } catch {
    // no data dir yet: nothing to count
  }
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

/**
 * One server in one ack mode: start, idle, warm up, measure, drain, account.
 * `logLevel` sets sensor-ingest's LOG_LEVEL for this run (--log-levels); the
 * run's `logLevel` says which it ran at (null: the server's default, or --log-level).
 */
async function measure(kind, mode, { logLevel = null } = {}) {
  const name = `${kind}${logLevel === null ? '' : ` (LOG_LEVEL=${logLevel})`}, ${mode}`;
  progress(`${name}: starting`);
  const label = logLevel === null ? mode : `${mode}-${logLevel}`;
  const server = await startServer(kind, mode, label, logLevel === null ? {} : { LOG_LEVEL: logLevel });
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
    progress(`${name}: ${options.durationSec} s at ${options.connections} connections`);
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
      logLevel: kind === 'sensor-ingest' ? (logLevel ?? options.logLevel ?? null) : null,
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
  const name = `${run.kind}${run.logLevel ? ` (LOG_LEVEL=${run.logLevel})` : ''}, ${run.mode}`;
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

/** The requests/s ratios reported for each ack mode: `of` ÷ `to`. */
const RATIOS = [
  { key: 'sensorIngestOverPlain', of: 'sensor-ingest', to: 'reference' },
  { key: 'sensorIngestOverExpress', of: 'sensor-ingest', to: 'express' },
  { key: 'expressOverPlain', of: 'express', to: 'reference' },
];

/** Each RATIOS ratio of one mode's runs, by `pick` (requests/s or rows/s); null where a kind did not run. */
function ratiosOf(set, pick) {
  return Object.fromEntries(RATIOS.map(({ key, of, to }) => [key, set[of] !== undefined && set[to] !== undefined ? pick(set[of]) / pick(set[to]) : null]));
}

/** The figures the issue compares, per kind, for one mode. */
function summaryOf(set) {
  return Object.fromEntries(
    kinds.map((kind) => {
      const run = set[kind];
      return [kind, { requestsPerSec: run.requestsPerSec, rowsPerSec: run.rowsPerSec, latencyP50Ms: run.latencyP50Ms, latencyP99Ms: run.latencyP99Ms, idleRssMb: run.idleRssMb, peakRssMb: run.peakRssMb }];
    }),
  );
}

function goals(runs, ratios, fill, extraRuns) {
  const si = (mode) => runs[mode]?.['sensor-ingest'];
  const siRuns = [...modes.map(si), ...extraRuns, fill].filter(Boolean);
  const list = [];
  const add = (goal, value, pass, shown) => {
    const ran = value !== null && value !== undefined && !Number.isNaN(value);
    list.push({ goal, value: ran ? value : null, pass: ran ? pass : null, shown: ran ? shown : 'n/a (not measured in this run)' });
  };
  const f = (x, digits = 2) => (x === null || x === undefined ? 'n/a' : x.toFixed(digits));
  for (const mode of ['queued', 'durable']) {
    const ratio = ratios[mode]?.sensorIngestOverExpress;
    add(`${mode}: sensor-ingest ≥ ${GOALS.ratioToExpress} × bare Express`, ratio, ratio >= GOALS.ratioToExpress, `${f(ratio)} × (requests/s)`);
  }
  const onOtherNode = serverNode.major === GOALS.p99Node ? '' : ` (on Node ${serverNode.major}; the issue asks it on Node ${GOALS.p99Node})`;
  for (const mode of ['queued', 'durable']) {
    const p99 = si(mode)?.latencyP99Ms;
    add(`${mode}: sensor-ingest p99 ≤ ${GOALS.p99Ms} ms`, p99, p99 <= GOALS.p99Ms, `${f(p99, 0)} ms${onOtherNode}`);
  }
  const idleGoal = idleRssGoal(serverNode.major);
  const idle = siRuns.length > 0 ? Math.max(...siRuns.map((r) => r.idleRssMb)) : null;
  const goalNote = idleGoal.forNode === serverNode.major ? '' : `, Node ${idleGoal.forNode}'s goal applied`;
  add(`idle RSS ≤ ${idleGoal.mb} MB on Node ${idleGoal.forNode}`, idle, idle <= idleGoal.mb, `${f(idle, 1)} MB (largest of ${siRuns.length} starts on Node ${serverNode.major}${goalNote})`);
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
  const row = (label, cells, width = 18) => lines.push(`  ${label.padEnd(26)}${cells.map((c) => String(c).padStart(width)).join('')}`.trimEnd());
  const { config } = report;
  lines.push(
    `sensor-ingest bench: servers on node ${config.node} (${config.serverNodePath})` +
      (config.node === config.benchNode ? '' : `; this bench and its load generator on node ${config.benchNode}`),
    `  ${config.connections} connections, ${config.durationSec} s measured (+${config.warmupSec} s warm-up) per run, ` +
      `${config.streams} stream(s), batch ${config.batch}, ${config.cpus} CPUs, ${HOST}`,
    `  sensor-ingest: node ${config.sensorIngestNodeFlags.join(' ')} dist/main.js (npm start's flags), ` +
      `LOG_LEVEL ${config.logLevel ?? `${SERVER_DEFAULT_LOG_LEVEL} (its default)`}`,
  );
  const ratioName = ({ of, to }) => `${KIND_LABELS[of]} / ${KIND_LABELS[to]}`;
  for (const mode of modes) {
    const set = report.runs[mode];
    const runs = kinds.map((kind) => set[kind]);
    lines.push('', `${mode} (${mode === 'queued' ? '202 once queued' : '201 after the covering fsync'})`);
    row('', kinds.map((kind) => KIND_LABELS[kind]));
    const each = (label, pick) => row(label, runs.map(pick));
    each('requests/s', (r) => int(r.requestsPerSec));
    if (options.batch > 1) each('rows/s', (r) => int(r.rowsPerSec));
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
    const shown = RATIOS.filter(({ key }) => report.ratios[mode][key] !== null);
    if (shown.length > 0) lines.push(`  requests/s: ${shown.map((r) => `${ratioName(r)} ${dec(report.ratios[mode][r.key], 2)}`).join(',  ')}`);
    if (shown.length > 0 && options.batch > 1) lines.push(`  rows/s:     ${shown.map((r) => `${ratioName(r)} ${dec(report.ratios[mode].rows[r.key], 2)}`).join(',  ')}`);
  }
  const { fill } = report;
  if (fill !== null) {
    lines.push('', 'full queue (sensor-ingest, queued, data.csv locked from outside while posting)');
    const one = (label, value) => lines.push(`  ${label.padEnd(26)}${String(value).padStart(18)}`);
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
  if (report.logLevels !== null) {
    lines.push('', 'log levels (sensor-ingest, the same load; LOG_LEVEL=info logs one line per request)');
    row('', ['LOG_LEVEL=warn', 'LOG_LEVEL=info', 'info costs']);
    for (const mode of modes) {
      const { warn, info, infoCostPct } = report.logLevels[mode];
      row(`${mode} requests/s`, [int(warn.requestsPerSec), int(info.requestsPerSec), `${dec(infoCostPct)} %`]);
      row(`${mode} p50 / p99`, [`${dec(warn.latencyP50Ms, 0)} / ${dec(warn.latencyP99Ms, 0)} ms`, `${dec(info.latencyP50Ms, 0)} / ${dec(info.latencyP99Ms, 0)} ms`, '']);
      row(`${mode} server CPU`, [`${int(warn.serverCpuPct)} %`, `${int(info.serverCpuPct)} %`, '']);
    }
    for (const mode of modes) lines.push(`  ${mode}: info request logging costs ${dec(report.logLevels[mode].infoCostPct)} % of throughput (1 - requests/s at info ÷ at warn)`);
  }
  if (modes.some((mode) => RATIOS.some(({ key }) => report.ratios[mode][key] !== null))) {
    lines.push('', 'summary: requests/s ratios');
    row('', RATIOS.map(({ of }) => `${KIND_LABELS[of]} /`), 20);
    row('', RATIOS.map(({ to }) => KIND_LABELS[to]), 20);
    for (const mode of modes) row(mode, RATIOS.map(({ key }) => dec(report.ratios[mode][key], 2)), 20);
  }
  lines.push('', `goals (2-core machine, loopback, 64 connections; servers on node ${config.node})`);
  for (const goal of report.goals) {
    lines.push(`  ${goal.pass === null ? 'n/a ' : goal.pass ? 'PASS' : 'MISS'}  ${goal.goal.padEnd(44)} ${goal.shown}`);
  }
  if (config.connections !== 64) lines.push(`  (measured at ${config.connections} connections, not 64)`);
  lines.push('', anomalies.length === 0 ? 'anomalies: none' : `anomalies:\n${anomalies.map((a) => `  - ${a}`).join('\n')}`);
  if (report.cpuProfileDir !== null) {
    lines.push('', `CPU profiles (sensor-ingest children): ${report.cpuProfileDir}`, `  node bench/profile-top.mjs ${join(report.cpuProfileDir, modes[0])}`);
  }
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------- nats

/*
 * --nats: the cost of forwarding to NATS JetStream, and the delay to the
 * central file, in one run on loopback:
 *
 *   nats-server -js (temp store, free port) ─► collector (dist/collect.js, temp DATA_DIR)
 *     ─► pairs, interleaved: forwarding off, forwarding on (NATS_URL, SITE_ID=bench), ...
 *          each: fresh server and DATA_DIR ─► warm-up ─► measured load (as `measure`)
 *          ─► on: wait until the collector has written every local row ─► SIGTERM
 *     ─► delay run: one reading a POST at a fixed rate, each with its own id; the
 *          central file (and the edge's file) followed, each id's arrival noted
 *     ─► SIGTERM the collector, then nats-server ─► the central files hold every
 *          forwarded local row exactly once
 *
 * nats-server and the collector run on the same two cores as the ingest server
 * and the load generator; their CPU is shown per run. Rows/s count 2xx answers only.
 */

const SITE = 'bench';
/**
 * Issue 18: forwarding costs at most 10 %. Two measures: rows/s posted (on
 * this 2-core machine nats-server and the collector take their CPU from the
 * same cores, so this counts their work too) and the server's own CPU per
 * row posted (what forwarding costs the edge itself, where on a Pi they run
 * elsewhere).
 */
const NATS_GOALS = { maxCostPct: 10 };
const NATS_READY_MS = 15_000;
/** How long the central file may stand still while rows are still missing, and the wait overall. */
const CATCH_UP_STALL_MS = 30_000;
const CATCH_UP_MAX_MS = 300_000;
/** How long after the last POST of the delay run its rows may still arrive. */
const E2E_WAIT_MS = 30_000;
/** The followed files are also polled this often (fs.watch may miss or merge events). */
const FOLLOW_POLL_MS = 5;

/** The nats-server binary: NATS_SERVER, else on PATH, else Debian's /usr/sbin/nats-server. */
function natsServerBinary() {
  if (process.env.NATS_SERVER) return process.env.NATS_SERVER;
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin', '/usr/local/bin']) {
    const candidate = join(dir, 'nats-server');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('nats-server not found (Debian package nats-server; or set NATS_SERVER)');
}

/** Spawns a child the bench tracks (killed at the end, also on error), keeping the tail of its output. */
function spawnTracked(command, argv, env) {
  const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const keep = (chunk) => (output = (output + chunk).slice(-8000));
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const handle = { child, exited, output: () => output, gone: false };
  void exited.then(() => (handle.gone = true));
  return handle;
}

/** SIGTERM, wait for the exit (SIGKILL after `graceMs`). */
async function stopTracked(handle, graceMs = 30_000) {
  if (handle.gone) return handle.exited;
  const sentAt = performance.now();
  handle.child.kill('SIGTERM');
  const killer = setTimeout(() => handle.child.kill('SIGKILL'), graceMs);
  const exit = await handle.exited;
  clearTimeout(killer);
  children.delete(handle.child);
  return { ...exit, stopMs: performance.now() - sentAt };
}

async function startNatsServer() {
  const binary = natsServerBinary();
  const work = mkdtempSync(join(tmpdir(), 'sensor-ingest-bench-nats-'));
  workDirs.add(work);
  const port = await freePort();
  const handle = spawnTracked(binary, ['-js', '-a', HOST, '-p', String(port), '-sd', join(work, 'jetstream')], { PATH: process.env.PATH });
  const startedAt = performance.now();
  while (!/Server is ready/.test(handle.output())) {
    if (handle.gone) throw new Error(`nats-server exited at start: ${handle.output().trim().split('\n').slice(-3).join(' | ')}`);
    if (performance.now() - startedAt > NATS_READY_MS) throw new Error(`nats-server not ready within ${NATS_READY_MS / 1000} s`);
    await sleep(10);
  }
  const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '?';
  return { ...handle, port, url: `nats://${HOST}:${port}`, version, readyMs: performance.now() - startedAt };
}

async function startCollector(natsUrl) {
  const work = mkdtempSync(join(tmpdir(), 'sensor-ingest-bench-collector-'));
  workDirs.add(work);
  const port = await freePort();
  const dataDir = join(work, 'data');
  const env = { PATH: process.env.PATH, PORT: String(port), HOST, DATA_DIR: dataDir, LOG_DIR: join(work, 'logs'), NATS_URL: natsUrl };
  if (options.logLevel !== undefined) env.LOG_LEVEL = options.logLevel;
  // The same node flags as `npm run collect`.
  const handle = spawnTracked(serverNode.path, [...scriptNodeFlags(ROOT, 'collect'), join(ROOT, 'dist', 'collect.js')], env);
  const log = scanWarnings(handle.child.stdout);
  const startedAt = performance.now();
  for (;;) {
    if (handle.gone) throw new Error(`the collector exited at start: ${handle.output().trim().split('\n').slice(-3).join(' | ')}`);
    if (performance.now() - startedAt > NATS_READY_MS) throw new Error(`the collector was not ready within ${NATS_READY_MS / 1000} s`);
    try {
      if ((await get(port, '/readyz', 500)).status === 200) break;
    } catch {
      // not ready yet: poll again
    }
    await sleep(20);
  }
  return { ...handle, port, dataDir, readyMs: performance.now() - startedAt, warnings: log.warnings };
}

/**
 * The collector's JetStream consumer as nats-server sees it (a connection of
 * the bench's own): messages handed out again after the ack wait, and those
 * out and not acknowledged. Null if it cannot be asked.
 */
async function consumerState(ctx) {
  try {
    const [{ connect }, { jetstreamManager }] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
    ctx.nc ??= await connect({ servers: ctx.nats.url, name: 'sensor-ingest bench' });
    const info = await (await jetstreamManager(ctx.nc)).consumers.info('SENSORS', 'sensor-ingest-collector');
    // Every delivery takes a consumer sequence number, a redelivery too; the filter (<prefix>.>)
    // takes every message of the stream, so the difference counts redeliveries so far
    // (num_redelivered only counts those not yet acknowledged).
    return {
      redelivered: info.delivered.consumer_seq - info.delivered.stream_seq,
      ackPending: info.num_ack_pending,
      pending: info.num_pending,
      delivered: info.delivered.stream_seq,
    };
  } catch (error) {
    anomalies.push(`cannot read the collector's consumer from nats-server: ${error.message}`);
    return null;
  }
}

/** The sum of a metric's samples whose labels contain `labelPart` (all of them if it is empty). */
function metricSum(text, name, labelPart = '') {
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    if ((match[1] ?? '').includes(labelPart)) sum += Number(match[2]);
  }
  return sum;
}

/** Rows the collector has written for the bench's site so far. */
async function collectedRows(collector) {
  const { body } = await get(collector.port, '/metrics');
  return metricSum(body, 'collect_rows_total', `site="${SITE}"`);
}

/** Waits until the server's forwarder holds its lock and is connected; false if not within 15 s. */
async function forwarderReady(server) {
  const startedAt = performance.now();
  while (performance.now() - startedAt < NATS_READY_MS) {
    try {
      const { status, body } = await get(server.port, '/readyz', 1000);
      const forward = status === 200 ? JSON.parse(body).checks?.forward : undefined;
      if (forward?.connected === true && forward?.forwarding === true) return true;
    } catch {
      // not up yet: poll again
    }
    await sleep(20);
  }
  return false;
}

/** CPU seconds so far of every process that matters here. */
function cpuSnapshot(ctx, server) {
  const bench = process.cpuUsage();
  return {
    at: performance.now(),
    server: treeCpuSec(server.child.pid),
    nats: treeCpuSec(ctx.nats.child.pid),
    collector: treeCpuSec(ctx.collector.child.pid),
    bench: (bench.user + bench.system) / 1e6,
    machine: machineBusySec(),
  };
}

/** Shares of one core between two snapshots (100 % = one core). */
function cpuShares(before, after) {
  const sec = (after.at - before.at) / 1000;
  const pct = (key) => (100 * (after[key] - before[key])) / sec;
  const shares = { serverCpuPct: pct('server'), natsCpuPct: pct('nats'), collectorCpuPct: pct('collector'), loadGenCpuPct: pct('bench') };
  shares.otherCpuPct = pct('machine') - shares.serverCpuPct - shares.natsCpuPct - shares.collectorCpuPct - shares.loadGenCpuPct;
  return shares;
}

/**
 * Waits until the server has written every row it queued and the collector
 * has written as many rows for the bench's site as the server's files hold.
 */
async function waitCaughtUp(server, ctx, collectedBefore, loadEndedAt) {
  for (;;) {
    const { body } = await get(server.port, '/metrics');
    if (metricValue(body, 'write_queue_length') === 0) break;
    if (performance.now() - loadEndedAt > CATCH_UP_MAX_MS) break;
    await sleep(20);
  }
  const localRows = countRows(server.dataDir).rows;
  const target = collectedBefore + localRows;
  let last = await collectedRows(ctx.collector);
  let lastMovedAt = performance.now();
  while (last < target) {
    const now = performance.now();
    if (now - lastMovedAt > CATCH_UP_STALL_MS || now - loadEndedAt > CATCH_UP_MAX_MS) {
      anomalies.push(`forwarding: the collector stopped at ${last - collectedBefore} of ${localRows} rows (waited ${Math.round((now - loadEndedAt) / 1000)} s)`);
      return { caughtUp: false, catchUpMs: null, localRows, collected: last - collectedBefore };
    }
    await sleep(20);
    const now2 = await collectedRows(ctx.collector);
    if (now2 !== last) lastMovedAt = performance.now();
    last = now2;
  }
  return { caughtUp: true, catchUpMs: performance.now() - loadEndedAt, localRows, collected: last - collectedBefore };
}

/** One measured run, forwarding off or on: as `measure`, plus the other processes' CPU and the catch-up. */
async function measureForwarding(ctx, forwarding, index) {
  const mode = options.ack === 'durable' ? 'durable' : 'queued';
  const name = `forwarding ${forwarding ? 'on' : 'off'} #${index}`;
  progress(`${name}: starting`);
  const extraEnv = forwarding ? { NATS_URL: ctx.nats.url, SITE_ID: SITE } : {};
  const server = await startServer('sensor-ingest', mode, `${forwarding ? 'on' : 'off'}${index}`, extraEnv);
  try {
    await sleep(IDLE_SETTLE_MS);
    if (forwarding && !(await forwarderReady(server))) anomalies.push(`${name}: the forwarder was not connected within ${NATS_READY_MS / 1000} s`);
    const collectedBefore = await collectedRows(ctx.collector);
    const ackedFirstIds = [];
    if (options.warmupSec > 0) await load(server, options.warmupSec, ackedFirstIds);
    const before = cpuSnapshot(ctx, server);
    progress(`${name}: ${options.durationSec} s at ${options.connections} connections`);
    const result = await load(server, options.durationSec, ackedFirstIds);
    const after = cpuSnapshot(ctx, server);
    const loadEndedAt = performance.now();
    const { body } = await get(server.port, '/metrics');
    const collectedAtEnd = (await collectedRows(ctx.collector)) - collectedBefore;
    const forwardLagAtEnd = forwarding ? metricSum(body, 'forward_lag_rows') : null;
    let catchUp = null;
    let forwardErrors = null;
    let consumer = null;
    if (forwarding) {
      progress(`${name}: waiting until the collector has every row`);
      catchUp = await waitCaughtUp(server, ctx, collectedBefore, loadEndedAt);
      forwardErrors = metricSum((await get(server.port, '/metrics')).body, 'forward_errors_total');
      consumer = await consumerState(ctx);
    }
    const stop = await stopServer(server);
    const loadStats = summarizeLoad(result);
    const { found } = countRows(server.dataDir);
    const run = {
      kind: 'sensor-ingest',
      mode: name,
      forwarding,
      ...loadStats,
      rowsPerSec: (loadStats.ok2xx * options.batch) / loadStats.durationSec,
      ...cpuShares(before, after),
      ...account(server.dataDir, ackedFirstIds),
      forwardLagAtEnd,
      forwardErrors,
      redeliveredSoFar: consumer?.redelivered ?? null,
      centralAtEnd: forwarding ? collectedAtEnd : null,
      ...(catchUp ?? { caughtUp: null, catchUpMs: null, localRows: null, collected: null }),
      peakRssMb: server.rss.peakMb(),
      healthyMs: server.healthyMs,
      ...stop,
    };
    noteAnomalies(run, server.stderr());
    return { run, forwardedIds: forwarding ? found : null };
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) await stopServer(server).catch(() => {});
  }
}

/**
 * Follows a CSV file as it grows, from its length now (or from its start if it
 * does not exist yet): notes when each id first appears, by the `id` column.
 */
function followIds(path) {
  const seen = new Map();
  let duplicates = 0;
  let offset = 0;
  let header = null;
  let idColumn = -1;
  let partial = '';
  let resets = 0;
  try {
    const text = readFileSync(path, 'utf8');
    const lastNewline = text.lastIndexOf('\n');
    offset = Buffer.byteLength(text.slice(0, lastNewline + 1));
    header = text.slice(0, text.indexOf('\n'));
    idColumn = header.split(',').indexOf('id');
  } catch {
    // no file yet: no id column
  }
  const check = () => {
    let fd;
    try {
      fd = openSync(path, 'r');
    } catch {
      return;
    }
    try {
      const size = fstatSync(fd).size;
      if (size < offset) {
        // The file was replaced (an archive rename): start over on the new one.
        resets++;
        offset = 0;
        header = null;
        partial = '';
      }
      if (size === offset) return;
      const buffer = Buffer.alloc(size - offset);
      const got = readSync(fd, buffer, 0, buffer.length, offset);
      offset += got;
      const at = performance.now();
      const lines = (partial + buffer.toString('utf8', 0, got)).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        if (header === null) {
          header = line;
          idColumn = header.split(',').indexOf('id');
          continue;
        }
        const id = Number(line.split(',')[idColumn]);
        if (seen.has(id)) duplicates++;
        else seen.set(id, at);
      }
    } finally {
      closeSync(fd);
    }
  };
  const timer = setInterval(check, FOLLOW_POLL_MS);
  let watcher = null;
  try {
    watcher = watch(dirname(path), () => check());
  } catch {
    // watching is only a shortcut: the poll below still sees the file
  }
  return {
    seen,
    check,
    stats: () => ({ duplicates, resets }),
    stop() {
      clearInterval(timer);
      watcher?.close();
    },
  };
}

function delayStats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, minMs: sorted[0] ?? null, p50Ms: quantileSorted(sorted, 0.5) ?? null, p99Ms: quantileSorted(sorted, 0.99) ?? null, maxMs: sorted.at(-1) ?? null };
}

/** One POST of one reading on a kept-alive connection; resolves to the status, or 0 on an error. */
function postOne(port, agent, stream, body) {
  return new Promise((resolve) => {
    const req = request(
      { host: HOST, port, path: `/${stream}`, method: 'POST', agent, timeout: 10_000, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** The delay run: readings at a fixed rate, each id's POST time against its arrival in the central file. */
async function endToEnd(ctx) {
  const mode = options.ack === 'durable' ? 'durable' : 'queued';
  const stream = streamNames[0];
  progress(`delay: starting a forwarding server`);
  const server = await startServer('sensor-ingest', mode, 'e2e', { NATS_URL: ctx.nats.url, SITE_ID: SITE }, { scanLog: true });
  const consumerBefore = await consumerState(ctx);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const central = followIds(join(ctx.collector.dataDir, SITE, `${stream}.csv`));
  const edge = followIds(join(server.dataDir, `${stream}.csv`));
  try {
    if (!(await forwarderReady(server))) anomalies.push(`delay: the forwarder was not connected within ${NATS_READY_MS / 1000} s`);
    const total = options.e2eRate * options.e2eDurationSec;
    const intervalMs = 1000 / options.e2eRate;
    const sentAt = new Map();
    const answeredMs = new Map();
    const statuses = {};
    const acked = [];
    const answers = [];
    progress(`delay: ${total} readings at ${options.e2eRate}/s to /${stream}, following ${SITE}/${stream}.csv`);
    const startedAt = performance.now();
    for (let i = 0; i < total; i++) {
      const due = startedAt + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const id = nextId++;
      const body = readingJson(id);
      const at = performance.now();
      sentAt.set(id, at);
      answers.push(
        postOne(server.port, agent, stream, body).then((status) => {
          answeredMs.set(id, performance.now() - at);
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status >= 200 && status < 300) acked.push(id);
        }),
      );
    }
    const sendSec = (performance.now() - startedAt) / 1000;
    await Promise.all(answers);
    const lastSentAt = performance.now();
    while (acked.some((id) => !central.seen.has(id)) && performance.now() - lastSentAt < E2E_WAIT_MS) await sleep(20);
    central.check();
    edge.check();
    const missing = acked.filter((id) => !central.seen.has(id));
    const missingAtEdge = acked.filter((id) => !edge.seen.has(id));
    const arrived = acked.filter((id) => central.seen.has(id));
    const delays = arrived.map((id) => central.seen.get(id) - sentAt.get(id));
    const consumerAfter = await consumerState(ctx);
    const run = {
      stream,
      rate: options.e2eRate,
      durationSec: options.e2eDurationSec,
      sent: total,
      sendSec,
      statuses,
      acked: acked.length,
      arrived: arrived.length,
      missing: missing.length,
      missingIds: missing.slice(0, 20),
      missingAtEdge: missingAtEdge.length,
      centralDuplicates: central.stats().duplicates,
      centralResets: central.stats().resets,
      toCentral: delayStats(delays),
      over: Object.fromEntries([1000, 2000, 10_000].map((ms) => [ms, delays.filter((d) => d > ms).length])),
      // Per second of sending: readings, and the slowest one's delay (where the slow ones came from).
      bySecond: Array.from({ length: Math.ceil(total / options.e2eRate) }, (_, s) => {
        const ids = acked.filter((id) => sentAt.get(id) - startedAt >= s * 1000 && sentAt.get(id) - startedAt < (s + 1) * 1000);
        const d = ids.filter((id) => central.seen.has(id)).map((id) => central.seen.get(id) - sentAt.get(id));
        return { second: s, readings: ids.length, maxMs: d.length === 0 ? null : Math.max(...d) };
      }),
      redelivered: consumerBefore && consumerAfter ? consumerAfter.redelivered - consumerBefore.redelivered : null,
      collectorWarnings: null,
      toEdgeFile: delayStats(acked.filter((id) => edge.seen.has(id)).map((id) => edge.seen.get(id) - sentAt.get(id))),
      postAnswer: delayStats([...answeredMs.values()]),
      pollMs: FOLLOW_POLL_MS,
    };
    if (run.missing > 0) {
      anomalies.push(
        `DELAY RUN: ${run.missing} of ${run.acked} acknowledged readings NEVER REACHED the central file within ${E2E_WAIT_MS / 1000} s ` +
          `of the last answer (ids ${run.missingIds.join(', ')}${run.missing > run.missingIds.length ? ', …' : ''})`,
      );
    }
    if (run.acked < run.sent) anomalies.push(`delay: ${run.sent - run.acked} of ${run.sent} POSTs not answered 2xx: ${Object.entries(statuses).map(([s, n]) => `${s}×${n}`).join(' ')}`);
    if (run.centralDuplicates > 0) anomalies.push(`delay: ${run.centralDuplicates} ids seen twice in the central file`);
    if (run.centralResets > 0) anomalies.push(`delay: the central file was replaced ${run.centralResets} time(s) while followed`);
    if (sendSec > options.e2eDurationSec * 1.1) anomalies.push(`delay: sending took ${sendSec.toFixed(1)} s instead of ${options.e2eDurationSec} s (the bench fell behind its rate)`);
    const stop = await stopServer(server);
    run.serverWarnings = server.warnings();
    if (stop.exitCode !== 0) anomalies.push(`delay: server exit ${stop.exitCode ?? stop.exitSignal} after SIGTERM`);
    const stderr = server.stderr().trim();
    if (stderr !== '') anomalies.push(`delay: server stderr: ${stderr.split('\n').slice(-3).join(' | ')}`);
    return { run, forwardedIds: countRows(server.dataDir).found };
  } finally {
    central.stop();
    edge.stop();
    agent.destroy();
    if (server.child.exitCode === null && server.child.signalCode === null) await stopServer(server).catch(() => {});
  }
}

/** After the collector stopped: the central files against every row the forwarding servers held. */
function accountCentral(ctx, forwardedSets) {
  const expected = new Set();
  for (const set of forwardedSets) for (const id of set) expected.add(id);
  const { rows, found, torn, otherFiles } = countRows(join(ctx.collector.dataDir, SITE));
  let missing = 0;
  for (const id of expected) if (!found.has(id)) missing++;
  let extra = 0;
  for (const id of found) if (!expected.has(id)) extra++;
  const central = { expected: expected.size, rows, missing, duplicates: rows - found.size, extra, torn, otherFiles };
  if (missing > 0) anomalies.push(`CENTRAL: ${missing} of ${expected.size} forwarded rows MISSING from ${SITE}/*.csv`);
  if (central.duplicates > 0) anomalies.push(`CENTRAL: ${central.duplicates} duplicated rows in ${SITE}/*.csv`);
  if (extra > 0) anomalies.push(`CENTRAL: ${extra} rows in ${SITE}/*.csv that no forwarding server held`);
  if (torn > 0) anomalies.push(`CENTRAL: ${torn} torn or unreadable rows in ${SITE}/*.csv`);
  return central;
}

function natsGoals(pairs, combined, e2e, central) {
  const list = [];
  const add = (goal, pass, shown) => list.push({ goal, pass, shown });
  const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
  pairs.forEach((pair, i) => add(`pair ${i + 1}: forwarding costs ≤ ${NATS_GOALS.maxCostPct} %`, pair.costPct <= NATS_GOALS.maxCostPct, `${f(pair.costPct)} % (on/off ${f(pair.ratio, 2)})`));
  if (pairs.length > 1) add(`all pairs: forwarding costs ≤ ${NATS_GOALS.maxCostPct} %`, combined.costPct <= NATS_GOALS.maxCostPct, `${f(combined.costPct)} % (on/off ${f(combined.ratio, 2)})`);
  add(
    `server CPU per row: forwarding adds ≤ ${NATS_GOALS.maxCostPct} %`,
    combined.edgeCostPct <= NATS_GOALS.maxCostPct,
    `${f(combined.edgeCostPct)} % (${f(combined.offCpuUs, 0)} → ${f(combined.onCpuUs, 0)} µs a row)`,
  );
  add('every acknowledged reading reached the central file', e2e.missing === 0 && e2e.acked === e2e.sent, `${e2e.arrived} of ${e2e.sent} (${e2e.missing} missing)`);
  add('central files: every forwarded row exactly once', central.missing === 0 && central.duplicates === 0 && central.extra === 0, `${central.rows} rows, ${central.missing} missing, ${central.duplicates} duplicated`);
  return list;
}

function printNatsTables(report) {
  const int = (x) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
  const dec = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
  const ms = (x) => (x === null || x === undefined ? 'n/a' : `${x.toFixed(0)} ms`);
  const { config, runs, pairs, combined, e2e, central } = report;
  const lines = [];
  const row = (label, cells) => lines.push(`  ${label.padEnd(30)}${cells.map((c) => String(c).padStart(15)).join('')}`);
  lines.push(
    `sensor-ingest bench --nats: ${config.connections} connections, ${config.durationSec} s measured (+${config.warmupSec} s warm-up) per run, ` +
      `${config.streams} stream(s), batch ${config.batch}, ack ${config.ack}, servers on node ${config.node}, ${config.cpus} CPUs, ${HOST}`,
    `  ${config.natsServer}, collector on the same machine; forwarding on: NATS_URL set, SITE_ID=${SITE}`,
    '',
    'throughput, forwarding off and on, interleaved',
  );
  row('', runs.map((r) => r.mode.replace('forwarding ', '')));
  const each = (label, pick) => row(label, runs.map(pick));
  each('rows/s posted (2xx)', (r) => int(r.rowsPerSec));
  each('latency p50 / p99', (r) => `${dec(r.latencyP50Ms, 0)} / ${dec(r.latencyP99Ms, 0)} ms`);
  each('2xx / non-2xx / errors', (r) => `${int(r.ok2xx)}/${int(r.non2xx)}/${int(r.errors)}`);
  each('rows lost (local)', (r) => int(r.rowsLost));
  each('server CPU (1 core=100%)', (r) => `${int(r.serverCpuPct)} %`);
  each('nats-server CPU', (r) => `${int(r.natsCpuPct)} %`);
  each('collector CPU', (r) => `${int(r.collectorCpuPct)} %`);
  each('load generator CPU', (r) => `${int(r.loadGenCpuPct)} %`);
  each('other CPU on the machine', (r) => `${int(r.otherCpuPct)} %`);
  each('forward lag at load end', (r) => (r.forwarding ? `${int(r.forwardLagAtEnd)} rows` : '-'));
  each('forward_errors_total', (r) => (r.forwarding ? int(r.forwardErrors) : '-'));
  each('redelivered so far (consumer)', (r) => (r.forwarding ? int(r.redeliveredSoFar) : '-'));
  each('central rows at load end', (r) => (r.forwarding ? `${int(r.centralAtEnd)}/${int(r.localRows)}` : '-'));
  each('central complete after', (r) => (r.forwarding ? (r.caughtUp ? `+${dec(r.catchUpMs / 1000)} s` : 'NEVER') : '-'));
  lines.push('', 'forwarding cost (rows/s on ÷ off)');
  pairs.forEach((pair, i) => lines.push(`  pair ${i + 1}: ${int(pair.off)} → ${int(pair.on)} rows/s   on/off ${dec(pair.ratio, 3)}   cost ${dec(pair.costPct)} %`));
  if (pairs.length > 1) lines.push(`  all:    ${int(combined.off)} → ${int(combined.on)} rows/s   on/off ${dec(combined.ratio, 3)}   cost ${dec(combined.costPct)} %   (mean rows/s of each side)`);
  lines.push('', "forwarding cost to the server itself (its CPU per row posted, off → on)");
  pairs.forEach((pair, i) => lines.push(`  pair ${i + 1}: ${int(pair.offCpuUs)} → ${int(pair.onCpuUs)} µs a row   +${dec(pair.edgeCostPct)} %`));
  lines.push(
    '',
    `end-to-end delay: ${e2e.sent} readings at ${e2e.rate}/s to /${e2e.stream} (${dec(e2e.sendSec)} s), POST sent → id seen in the file (polled every ${e2e.pollMs} ms + fs.watch)`,
  );
  const one = (label, value) => lines.push(`  ${label.padEnd(30)}${value}`);
  one('POSTs answered 2xx', `${e2e.acked} of ${e2e.sent}  (${Object.entries(e2e.statuses).map(([s, n]) => `${s}×${n}`).join(' ')})`);
  one('arrived in the central file', `${e2e.arrived} of ${e2e.acked}${e2e.missing > 0 ? `   *** ${e2e.missing} MISSING: ids ${e2e.missingIds.join(', ')} ***` : ''}`);
  const d = (s) => `p50 ${ms(s.p50Ms)}   p99 ${ms(s.p99Ms)}   max ${ms(s.maxMs)}   min ${ms(s.minMs)}`;
  one('to the central file', d(e2e.toCentral));
  one('slower than 1 s / 2 s / 10 s', `${e2e.over[1000]} / ${e2e.over[2000]} / ${e2e.over[10_000]} readings`);
  one('slowest, by second of sending', e2e.bySecond.map((b) => (b.maxMs === null ? '-' : (b.maxMs / 1000).toFixed(1))).join(' ') + ' s');
  one('redelivered by JetStream', e2e.redelivered === null ? 'n/a' : `${e2e.redelivered} messages (after the ${30} s ack wait)`);
  one('to the edge file (written)', d(e2e.toEdgeFile));
  one('POST answer', d(e2e.postAnswer));
  const warned = (w) => (Object.keys(w ?? {}).length === 0 ? 'none' : Object.entries(w).map(([line, n]) => `${n}× ${line}`).join('; '));
  one("delay run's server WARN+", warned(e2e.serverWarnings));
  one('collector WARN+ (whole bench)', warned(e2e.collectorWarnings));
  lines.push('', `central files (${SITE}/*.csv, after the collector stopped)`);
  one('rows / expected', `${int(central.rows)} / ${int(central.expected)}`);
  one('missing / duplicated / extra', `${int(central.missing)} / ${int(central.duplicates)} / ${int(central.extra)}`);
  lines.push('', 'summary');
  const sum = (label, value) => lines.push(`  ${label.padEnd(38)}${value}`);
  pairs.forEach((pair, i) => sum(`pair ${i + 1} rows/s off → on`, `${int(pair.off)} → ${int(pair.on)}   (${dec(pair.ratio, 3)}, cost ${dec(pair.costPct)} %)`));
  if (pairs.length > 1) sum('all pairs rows/s off → on', `${int(combined.off)} → ${int(combined.on)}   (${dec(combined.ratio, 3)}, cost ${dec(combined.costPct)} %)`);
  sum('server CPU per row off → on', `${int(combined.offCpuUs)} → ${int(combined.onCpuUs)} µs   (+${dec(combined.edgeCostPct)} %)`);
  sum('POST → central file p50 / p99 / max', `${ms(e2e.toCentral.p50Ms)} / ${ms(e2e.toCentral.p99Ms)} / ${ms(e2e.toCentral.maxMs)}`);
  sum('delay-run readings arrived', `${e2e.arrived} of ${e2e.sent}`);
  lines.push('', `goals (2-core machine, loopback, nats-server and collector on the same cores)`);
  for (const goal of report.goals) lines.push(`  ${goal.pass ? 'PASS' : 'MISS'}  ${goal.goal.padEnd(52)} ${goal.shown}`);
  lines.push('', anomalies.length === 0 ? 'anomalies: none' : `anomalies:\n${anomalies.map((a) => `  - ${a}`).join('\n')}`);
  console.log(lines.join('\n'));
}

/** The --nats mode; resolves to the exit code. */
async function natsBench() {
  progress('starting nats-server');
  const nats = await startNatsServer();
  progress(`nats-server on ${HOST}:${nats.port}; starting the collector`);
  const collector = await startCollector(nats.url);
  const ctx = { nats, collector };
  const runs = [];
  const forwardedSets = [];
  for (let i = 1; i <= options.pairs; i++) {
    for (const forwarding of [false, true]) {
      const { run, forwardedIds } = await measureForwarding(ctx, forwarding, i);
      runs.push(run);
      if (forwardedIds !== null) forwardedSets.push(forwardedIds);
    }
  }
  const { run: e2e, forwardedIds } = await endToEnd(ctx);
  forwardedSets.push(forwardedIds);

  progress('stopping the collector and nats-server');
  await ctx.nc?.close().catch(() => {});
  const collectorStop = await stopTracked(collector);
  if (collectorStop.code !== 0) anomalies.push(`collector: exit ${collectorStop.code ?? collectorStop.signal} after SIGTERM: ${collector.output().trim().split('\n').slice(-2).join(' | ')}`);
  const collectorWarnings = collector.warnings();
  for (const [line, count] of Object.entries(collectorWarnings)) if (!line.startsWith('WARN')) anomalies.push(`collector logged ${count}× ${line}`);
  for (const [line, count] of Object.entries(e2e.serverWarnings)) if (!line.startsWith('WARN')) anomalies.push(`delay run's server logged ${count}× ${line}`);
  e2e.collectorWarnings = collectorWarnings;
  const natsStop = await stopTracked(nats);
  // nats-server 2.9 exits 1 after a clean SIGTERM shutdown ("Server Exiting..").
  const natsClean = natsStop.code === 0 || (natsStop.code === 1 && /Server Exiting/.test(nats.output()));
  if (!natsClean) anomalies.push(`nats-server: exit ${natsStop.code ?? natsStop.signal} after SIGTERM: ${nats.output().trim().split('\n').slice(-2).join(' | ')}`);
  const central = accountCentral(ctx, forwardedSets);

  const pairs = [];
  for (let i = 0; i < runs.length; i += 2) {
    const [off, on] = [runs[i].rowsPerSec, runs[i + 1].rowsPerSec];
    // Server CPU seconds per row posted: a core-share over rows per second.
    const cpuPerRow = (run) => run.serverCpuPct / 100 / run.rowsPerSec;
    const [offCpuUs, onCpuUs] = [cpuPerRow(runs[i]) * 1e6, cpuPerRow(runs[i + 1]) * 1e6];
    pairs.push({ off, on, ratio: on / off, costPct: 100 * (1 - on / off), offCpuUs, onCpuUs, edgeCostPct: 100 * (onCpuUs / offCpuUs - 1) });
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const combinedOff = mean(pairs.map((p) => p.off));
  const combinedOn = mean(pairs.map((p) => p.on));
  const [combinedOffCpuUs, combinedOnCpuUs] = [mean(pairs.map((p) => p.offCpuUs)), mean(pairs.map((p) => p.onCpuUs))];
  const combined = {
    off: combinedOff,
    on: combinedOn,
    ratio: combinedOn / combinedOff,
    costPct: 100 * (1 - combinedOn / combinedOff),
    offCpuUs: combinedOffCpuUs,
    onCpuUs: combinedOnCpuUs,
    edgeCostPct: 100 * (combinedOnCpuUs / combinedOffCpuUs - 1),
  };
  const report = {
    config: {
      connections: options.connections,
      durationSec: options.durationSec,
      warmupSec: options.warmupSec,
      streams: options.streams,
      batch: options.batch,
      ack: options.ack === 'durable' ? 'durable' : 'queued',
      pairs: options.pairs,
      e2eRate: options.e2eRate,
      e2eDurationSec: options.e2eDurationSec,
      logLevel: options.logLevel ?? null,
      serverEnv: options.serverEnv,
      natsServer: nats.version,
      node: serverNode.version,
      serverNodePath: serverNode.path,
      benchNode: process.version,
      cpus: cpus().length,
    },
    runs,
    pairs,
    combined,
    e2e,
    central,
    goals: natsGoals(pairs, combined, e2e, central),
    anomalies,
  };
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else printNatsTables(report);
  const failed = runs.some((run) => run.rowsLost > 0) || e2e.missing > 0 || central.missing > 0 || central.duplicates > 0 || runs.some((run) => run.forwarding && !run.caughtUp);
  return failed ? 1 : 0;
}

// ---------------------------------------------------------------- main

/** sensor-ingest's LOG_LEVEL when none is set (src/shared/config.ts, docs/configuration.md). */
const SERVER_DEFAULT_LOG_LEVEL = 'info';

/** What the log-levels block shows of one run. */
const levelSummary = (run) => ({
  logLevel: run.logLevel ?? SERVER_DEFAULT_LOG_LEVEL,
  requestsPerSec: run.requestsPerSec,
  latencyP50Ms: run.latencyP50Ms,
  latencyP99Ms: run.latencyP99Ms,
  serverCpuPct: run.serverCpuPct,
  idleRssMb: run.idleRssMb,
  peakRssMb: run.peakRssMb,
});

/** sensor-ingest against the two reference servers (the default mode); resolves to the exit code. */
async function referenceBench() {
  const runs = {};
  const ratios = {};
  const summary = {};
  const logLevels = options.logLevels ? {} : null;
  const extraRuns = [];
  const mainLevel = options.logLevel ?? SERVER_DEFAULT_LOG_LEVEL;
  const otherLevel = mainLevel === 'info' ? 'warn' : 'info';
  for (const mode of modes) {
    runs[mode] = {};
    for (const kind of kinds) runs[mode][kind] = await measure(kind, mode);
    if (logLevels !== null) {
      // Right after the run at the main level, so the two see the same machine.
      const extra = await measure('sensor-ingest', mode, { logLevel: otherLevel });
      extraRuns.push(extra);
      const at = { [mainLevel]: runs[mode]['sensor-ingest'], [otherLevel]: extra };
      const infoOverWarn = at.info.requestsPerSec / at.warn.requestsPerSec;
      logLevels[mode] = { warn: levelSummary(at.warn), info: levelSummary(at.info), infoOverWarn, infoCostPct: 100 * (1 - infoOverWarn), extraRun: extra };
    }
    ratios[mode] = { ...ratiosOf(runs[mode], (run) => run.requestsPerSec), rows: ratiosOf(runs[mode], (run) => run.rowsPerSec) };
    summary[mode] = summaryOf(runs[mode]);
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
      kinds: Object.fromEntries(kinds.map((kind) => [kind, KIND_LABELS[kind]])),
      logLevel: options.logLevel ?? null,
      logLevels: options.logLevels,
      serverEnv: options.serverEnv,
      cpuProf: options.cpuProf,
      node: serverNode.version,
      serverNodePath: serverNode.path,
      sensorIngestNodeFlags: startFlags,
      benchNode: process.version,
      cpus: cpus().length,
    },
    runs,
    ratios,
    summary,
    logLevels,
    fill,
    goals: [],
    anomalies,
    cpuProfileDir: profileDir,
  };
  report.goals = goals(runs, ratios, fill, extraRuns);
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else printTables(report);
  const lost = [...Object.values(runs).flatMap((set) => KINDS.map((k) => set[k]).filter(Boolean)), ...extraRuns, fill].some((run) => run?.rowsLost > 0);
  return lost ? 1 : 0;
}

let profileDir = null;
/** The node that runs the servers (--node) and the node flags sensor-ingest gets (npm start's). */
let serverNode;
let startFlags;
let exitCode;
try {
  startFlags = scriptNodeFlags(ROOT, 'start');
  serverNode = resolveServerNode(args.node);
  progress(`servers on node ${serverNode.version} (${serverNode.path})`);
  buildIfNeeded();
  if (options.cpuProf) {
    profileDir = args['cpu-prof-dir'] ?? mkdtempSync(join(tmpdir(), 'sensor-ingest-cpuprof-'));
    mkdirSync(profileDir, { recursive: true });
  }
  exitCode = options.nats ? await natsBench() : await referenceBench();
} catch (error) {
  progress(`failed: ${error.stack ?? error}`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
