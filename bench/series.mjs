#!/usr/bin/env node
/**
 * Benchmark: charts over a range, `GET /streams/<name>/series` (SPEC section 13),
 * against a month of 1-Hz readings.
 *
 *   npm run bench:series                        # 30 days, 20 repeats, 3 restarts
 *   npm run bench:series -- --days 7 --repeats 10 --restarts 2
 *   npm run bench:series -- --cpu-prof          # profile the server (kept, printed)
 *   node bench/profile-top.mjs <dir>/first      # then: top self-time functions
 *   npm run bench:series -- --json              # one JSON object on stdout
 *
 * It needs a built server (dist/main.js: `npm run build`) and does not build it.
 *
 *   write --days day files (<stream>-YYYY-MM-DD.csv, the last one today up to
 *     now; 1 row a second: temperature, humidity, pressure, battery)
 *   ─► spawn the server (CSV_ROTATE=daily, LOG_LEVEL=warn, the node flags of
 *     `npm start`) ─► /healthz 200
 *   ─► /healthz polled 100 times on the idle server (the yardstick)
 *   ─► (a) the first /series for the whole range (from = now − days, to = now,
 *     points=600): every file is summarised; meanwhile /healthz is polled
 *     (a fresh connection each, 5 ms apart) and its latencies kept
 *   ─► (b) the same query --repeats times (summaries in memory)
 *   ─► (d) --restarts times: SIGTERM, spawn again on the same DATA_DIR, the
 *     same query once (summaries read back from disk; the bench checks that
 *     no summary file was written again)
 *   ─► SIGTERM, rm the temp dirs
 *
 * (c) is the summarising rate: the CSV bytes over the first query's time.
 * Every answer is checked: bucket_ms a whole number of minutes, at most
 * `points` aligned buckets in ascending order inside the range, the four
 * fields with no unit, min ≤ mean ≤ max in each bucket, the counts of each
 * field adding up to the rows written inside the range, and the extremes
 * equal to the written ones. A failed check exits 1; goals that are missed
 * are reported, not failed.
 *
 * The values are made up from a fixed seed but behave like a weather sensor's
 * (a daily cycle, slow random walks, sensor noise; received_at's milliseconds
 * jitter around the sender's phase). Sizes are decimal: 1 MB = 10^6 bytes.
 * Requests go to 127.0.0.1 only; the server is killed and the temp dirs removed
 * at the end, also on error.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { HOST, freePort, get, median, parseOptions, quantile, scriptNodeFlags, seededRandom, sleep } from './lib.mjs';
import { createRssSampler, machineBusySec, treeCpuSec } from './proc-stats.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const HEALTH_POLL_MS = 5;
/** /healthz polls on the idle server before the first query, for comparison. */
const IDLE_HEALTH_POLLS = 100;
/** Rows built into one string and written with one call. */
const ROWS_PER_WRITE = 3_600;
const FIELDS = ['temperature', 'humidity', 'pressure', 'battery'];
const MB = 1e6;
/** The node flags of `npm start`, the systemd unit and the PM2 config (--node-flags to change). */
const NPM_START_FLAGS = scriptNodeFlags(join(dirname(fileURLToPath(import.meta.url)), '..'), 'start').join(' ');

/** The goals of the issue. */
const GOALS = {
  repeatedMs: 100,
  summariseMbPerSec: 50,
  healthP99Ms: 50,
};

const USAGE = `usage: npm run bench:series -- [options]
  --days N            day files of 1-Hz readings, the last one today (default 30)
  --points N          points asked for (default 600)
  --repeats N         repeated queries timed after the first (default 20)
  --restarts N        restarts, each followed by one timed query (default 3)
  --stream NAME       the stream's name (default env)
  --node-flags FLAGS  the server's node flags (default: those of npm start, '${NPM_START_FLAGS}')
  --cpu-prof          run the server with node --cpu-prof (one profile per start)
  --cpu-prof-dir DIR  where the profiles go (default: a new temp dir, kept and printed)
  --json              print one JSON object instead of the table
  --help`;

const args = parseOptions(USAGE, {
  days: { type: 'string', default: '30' },
  points: { type: 'string', default: '600' },
  repeats: { type: 'string', default: '20' },
  restarts: { type: 'string', default: '3' },
  stream: { type: 'string', default: 'env' },
  'node-flags': { type: 'string', default: NPM_START_FLAGS },
  'cpu-prof': { type: 'boolean', default: false },
  'cpu-prof-dir': { type: 'string' },
  json: { type: 'boolean', default: false },
});
function wholeNumber(name, min) {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`bench:series: --${name} must be a whole number of at least ${min}, got '${args[name]}'\n${USAGE}\n`);
    process.exit(2);
  }
  return value;
}
const options = {
  days: wholeNumber('days', 1),
  points: wholeNumber('points', 1),
  repeats: wholeNumber('repeats', 1),
  restarts: wholeNumber('restarts', 0),
  stream: args.stream,
  nodeFlags: args['node-flags'].split(/\s+/).filter((flag) => flag !== ''),
  cpuProf: args['cpu-prof'],
  json: args.json,
};
if (!/^[A-Za-z0-9_-]{1,64}$/.test(options.stream)) {
  process.stderr.write(`bench:series: --stream must be a plain name, got '${options.stream}'\n`);
  process.exit(2);
}
const progress = (message) => process.stderr.write(`bench:series: ${message}\n`);
const ENTRY = join(ROOT, 'dist', 'main.js');
if (!existsSync(ENTRY)) {
  process.stderr.write(`bench:series: ${ENTRY} is missing: run npm run build first\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- clean-up

const children = new Set();
const workDirs = new Set();
let cleanedUp = false;
function cleanUp() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    progress(`${signal}: stopping`);
    cleanUp();
    process.exit(130);
  });
}
process.once('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

// ---------------------------------------------------------------- data

/**
 * Writes the day files; returns their bytes, rows, each row's time (for the
 * counts inside a range) and each field's extremes as written.
 */
function writeDays(dataDir, stream, days, nowMs) {
  mkdirSync(dataDir, { recursive: true });
  const rand = seededRandom(20261203);
  const noise = () => rand() + rand() + rand() - 1.5; // about normal, sd 0.5
  const pad2 = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
  const pad3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
  const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
  const firstDay = today - (days - 1) * DAY_MS;
  const totalSeconds = days * 86_400;
  const times = new Float64Array(totalSeconds);
  const extremes = Object.fromEntries(FIELDS.map((name) => [name, { min: Infinity, max: -Infinity }]));
  const keep = (name, text) => {
    const value = Number(text);
    const e = extremes[name];
    if (value < e.min) e.min = value;
    if (value > e.max) e.max = value;
  };
  let rows = 0;
  let bytes = 0;
  let tempWalk = 0;
  let humWalk = 0;
  let pressure = 1013.2;
  const files = [];
  for (let dayStart = firstDay; dayStart <= today; dayStart += DAY_MS) {
    const name = `${stream}-${new Date(dayStart).toISOString().slice(0, 10)}.csv`;
    const prefix = new Date(dayStart).toISOString().slice(0, 11); // 2026-11-23T
    const fd = openSync(join(dataDir, name), 'w');
    let text = `received_at,${FIELDS.join(',')}\n`;
    let inChunk = 0;
    for (let second = 0; second < 86_400; second++) {
      const ms = 100 + Math.floor(rand() * 60); // the sender's phase, jittering
      const t = dayStart + second * 1000 + ms;
      if (t > nowMs) break;
      const hour = Math.floor(second / 3600);
      const minute = Math.floor(second / 60) % 60;
      // Slow random walks, pulled back to their middle, and a daily cycle peaking mid-afternoon.
      tempWalk = tempWalk * 0.99995 + noise() * 0.004;
      humWalk = humWalk * 0.99995 + noise() * 0.01;
      pressure += (1013.2 - pressure) * 0.00002 + noise() * 0.004;
      const cycle = Math.sin((2 * Math.PI * (second - 9 * 3600)) / 86_400);
      const temperature = (21 + 4 * cycle + tempWalk + noise() * 0.06).toFixed(2);
      const humidity = (50 - 9 * cycle + humWalk + noise() * 0.4).toFixed(1);
      const hpa = (pressure + noise() * 0.1).toFixed(1);
      const battery = (3.3 - (0.25 * rows) / totalSeconds + noise() * 0.004).toFixed(3);
      keep('temperature', temperature);
      keep('humidity', humidity);
      keep('pressure', hpa);
      keep('battery', battery);
      text += `${prefix}${pad2[hour]}:${pad2[minute]}:${pad2[second % 60]}.${pad3[ms]}Z,${temperature},${humidity},${hpa},${battery}\n`;
      times[rows++] = t;
      if (++inChunk === ROWS_PER_WRITE) {
        bytes += writeSync(fd, text);
        text = '';
        inChunk = 0;
      }
    }
    if (text !== '') bytes += writeSync(fd, text);
    closeSync(fd);
    files.push(name);
  }
  return { files, rows, bytes, times: times.subarray(0, rows), extremes, firstDay };
}

/** Rows counted by /series for [from, to): those whose minute starts inside it. */
function rowsInRange(times, from, to) {
  let count = 0;
  for (const t of times) {
    const minute = t - (t % MINUTE_MS);
    if (minute >= from && minute < to) count++;
  }
  return count;
}

// ---------------------------------------------------------------- server

let profileDir;
if (options.cpuProf) {
  profileDir = args['cpu-prof-dir'] ?? mkdtempSync(join(tmpdir(), 'sensor-ingest-series-prof-'));
  mkdirSync(profileDir, { recursive: true });
}

async function startServer(work, label) {
  const port = await freePort();
  const env = {
    PATH: process.env.PATH,
    PORT: String(port),
    HOST,
    DATA_DIR: join(work, 'data'),
    LOG_DIR: join(work, 'logs'),
    STREAMS: options.stream,
    CSV_ROTATE: 'daily',
    LOG_LEVEL: 'warn',
  };
  const nodeArgs = [...options.nodeFlags];
  if (options.cpuProf) {
    const dir = join(profileDir, label);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, ENTRY], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const keep = (chunk) => (output = (output + chunk).slice(-4000));
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  let healthyMs;
  while (healthyMs === undefined) {
    if (gone) throw new Error(`the server exited before it was healthy: ${output.trim() || '(no output)'}`);
    if (performance.now() - spawnedAt > 30_000) throw new Error(`the server was not healthy within 30 s: ${output.trim()}`);
    try {
      if ((await get(port, '/healthz', 500)).status === 200) healthyMs = performance.now() - spawnedAt;
    } catch {
      // not listening yet: poll again
    }
    if (healthyMs === undefined) await sleep(HEALTH_POLL_MS);
  }
  const rss = createRssSampler(child.pid);
  return { port, child, exited, healthyMs, rss, output: () => output };
}

/** SIGTERM, then wait for the exit (SIGKILL after 30 s). */
async function stopServer(server) {
  server.child.kill('SIGTERM');
  const killer = setTimeout(() => server.child.kill('SIGKILL'), 30_000);
  const { code, signal } = await server.exited;
  clearTimeout(killer);
  server.rss.stop();
  children.delete(server.child);
  return { code, signal };
}

// ---------------------------------------------------------------- checks

/** Checks an answer (see the header); returns a summary of it, or throws with what is wrong. */
function checkAnswer(answer, query, expectedRows, extremes) {
  const problems = [];
  const { from, to, points } = query;
  const bucket = answer.bucket_ms;
  if (!Number.isInteger(bucket) || bucket < MINUTE_MS || bucket % MINUTE_MS !== 0) problems.push(`bucket_ms ${bucket} is not a whole number of minutes`);
  if (bucket * points < to - from) problems.push(`bucket_ms ${bucket} × ${points} points does not cover the range`);
  if (answer.from !== new Date(from).toISOString() || answer.to !== new Date(to).toISOString()) problems.push(`from/to echoed as ${answer.from}/${answer.to}`);
  const names = Object.keys(answer.fields ?? {}).sort();
  if (names.join() !== [...FIELDS].sort().join()) problems.push(`fields ${names.join(', ')}`);
  let buckets = 0;
  const counts = {};
  for (const name of names) {
    const field = answer.fields[name];
    const n = field.t.length;
    buckets = Math.max(buckets, n);
    if (field.unit !== '') problems.push(`${name}: unit '${field.unit}'`);
    if (n > points) problems.push(`${name}: ${n} buckets, more than ${points}`);
    for (const key of ['min', 'max', 'mean', 'count']) if (field[key].length !== n) problems.push(`${name}: ${key} has ${field[key].length} entries, t ${n}`);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const t = field.t[i];
      if (t % bucket !== 0) problems.push(`${name}: bucket ${t} not aligned`);
      if (i > 0 && t <= field.t[i - 1]) problems.push(`${name}: buckets out of order at ${i}`);
      if (t < Math.floor(from / bucket) * bucket || t >= to) problems.push(`${name}: bucket ${new Date(t).toISOString()} outside the range`);
      if (!(field.min[i] <= field.mean[i] + 1e-9 && field.mean[i] <= field.max[i] + 1e-9)) problems.push(`${name}: min ${field.min[i]} mean ${field.mean[i]} max ${field.max[i]} at ${i}`);
      total += field.count[i];
    }
    counts[name] = total;
    if (total !== expectedRows) problems.push(`${name}: counts add up to ${total}, rows in the range ${expectedRows}`);
    const low = Math.min(...field.min);
    const high = Math.max(...field.max);
    if (low !== extremes[name].min || high !== extremes[name].max) problems.push(`${name}: extremes ${low}..${high}, written ${extremes[name].min}..${extremes[name].max}`);
    if (problems.length > 20) break;
  }
  if (problems.length > 0) throw new Error(`the answer is wrong: ${problems.slice(0, 8).join('; ')}`);
  return { bucketMs: bucket, buckets, counts };
}

/** The summary files' modification times, by name. */
function summaryTimes(dataDir) {
  const dir = join(dataDir, '.sensor-ingest', 'summaries');
  if (!existsSync(dir)) return new Map();
  return new Map(
    readdirSync(dir)
      .filter((name) => name.endsWith('.json'))
      .map((name) => [name, statSync(join(dir, name)).mtimeMs]),
  );
}
const dirBytes = (dir) => (existsSync(dir) ? readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0) : 0);

// ---------------------------------------------------------------- run

async function run() {
  const work = mkdtempSync(join(tmpdir(), 'sensor-ingest-series-'));
  workDirs.add(work);
  const dataDir = join(work, 'data');

  progress(`writing ${options.days} days of 1-Hz readings to ${dataDir}…`);
  const writeStartedAt = performance.now();
  const data = writeDays(dataDir, options.stream, options.days, Date.now());
  const writeMs = performance.now() - writeStartedAt;
  progress(`${data.rows.toLocaleString('en')} rows, ${(data.bytes / MB).toFixed(1)} MB in ${data.files.length} files (${(writeMs / 1000).toFixed(1)} s)`);

  let server = await startServer(work, 'first');
  const firstHealthyMs = server.healthyMs;
  const to = Date.now();
  const from = to - options.days * DAY_MS;
  const query = { from, to, points: options.points };
  const path = `/streams/${options.stream}/series?from=${from}&to=${to}&points=${options.points}`;
  const expectedRows = rowsInRange(data.times, from, to);
  const ask = async (port) => {
    const answer = await get(port, path, 300_000);
    if (answer.status !== 200) throw new Error(`GET ${path}: ${answer.status} ${answer.body.slice(0, 300)}`);
    return { ms: answer.ms, bytes: Buffer.byteLength(answer.body), check: checkAnswer(JSON.parse(answer.body), query, expectedRows, data.extremes) };
  };

  // /healthz idle first, as the yardstick for (a).
  const idleHealth = [];
  for (let i = 0; i < IDLE_HEALTH_POLLS; i++) {
    idleHealth.push((await get(server.port, '/healthz')).ms);
    await sleep(HEALTH_POLL_MS);
  }

  // (a) The first query, with /healthz polled all along.
  progress('first query (summarising), polling /healthz…');
  const health = [];
  let healthFailures = 0;
  let querying = true;
  const poller = (async () => {
    while (querying) {
      try {
        const answer = await get(server.port, '/healthz', 5000);
        if (answer.status === 200) health.push(answer.ms);
        else healthFailures++;
      } catch {
        healthFailures++;
      }
      await sleep(HEALTH_POLL_MS);
    }
  })();
  const rssMark = performance.now();
  const cpuAtStart = { server: treeCpuSec(server.child.pid), machine: machineBusySec(), self: process.cpuUsage() };
  let first;
  try {
    first = await ask(server.port);
  } finally {
    querying = false;
    await poller;
  }
  const selfUsage = process.cpuUsage(cpuAtStart.self);
  const serverCpuSec = treeCpuSec(server.child.pid) - cpuAtStart.server;
  const benchCpuSec = (selfUsage.user + selfUsage.system) / 1e6;
  const othersCpuSec = Math.max(0, machineBusySec() - cpuAtStart.machine - serverCpuSec - benchCpuSec);
  const firstPeakRssMb = server.rss.peakMb(rssMark);
  const written = summaryTimes(dataDir);
  progress(`first query: ${first.ms.toFixed(0)} ms; ${written.size} summary files`);

  // (b) The same query again.
  const repeated = [];
  for (let i = 0; i < options.repeats; i++) repeated.push((await ask(server.port)).ms);
  progress(`repeated: median ${median(repeated).toFixed(1)} ms`);
  await stopServer(server);

  // (d) Restarts: summaries read back from disk.
  const afterRestart = [];
  const restartHealthy = [];
  const rewritten = new Set();
  for (let i = 1; i <= options.restarts; i++) {
    const before = summaryTimes(dataDir);
    server = await startServer(work, `restart-${i}`);
    restartHealthy.push(server.healthyMs);
    afterRestart.push((await ask(server.port)).ms);
    for (const [name, mtime] of summaryTimes(dataDir)) if (before.get(name) !== mtime) rewritten.add(name);
    await stopServer(server);
  }
  if (options.restarts > 0) progress(`after a restart: median ${median(afterRestart).toFixed(0)} ms`);
  // The current (today's) file's summary may be saved again; a closed file's must not be.
  const today = `${options.stream}-${new Date(to).toISOString().slice(0, 10)}.csv.json`;
  const closedRebuilt = [...rewritten].filter((name) => name !== today);
  if (closedRebuilt.length > 0) throw new Error(`after a restart, closed files were summarised again: ${closedRebuilt.join(', ')}`);

  return {
    days: options.days,
    rows: data.rows,
    csvBytes: data.bytes,
    files: data.files.length,
    writeMs,
    query: { from: new Date(from).toISOString(), to: new Date(to).toISOString(), points: options.points },
    answer: { ...first.check, bytes: first.bytes, rowsInRange: expectedRows },
    summaries: { files: written.size, bytes: dirBytes(join(dataDir, '.sensor-ingest', 'summaries')), rewrittenAfterRestart: [...rewritten] },
    healthyMs: firstHealthyMs,
    firstMs: first.ms,
    firstPeakRssMb,
    /** CPU during the first query, in cores: the server (all threads), this bench, everything else on the machine. */
    firstCpuCores: { server: serverCpuSec / (first.ms / 1000), bench: benchCpuSec / (first.ms / 1000), others: othersCpuSec / (first.ms / 1000) },
    summariseMbPerSec: data.bytes / MB / (first.ms / 1000),
    idleHealth: { polls: idleHealth.length, p50: quantile(idleHealth, 0.5), p99: quantile(idleHealth, 0.99), max: Math.max(...idleHealth) },
    health: { polls: health.length, failures: healthFailures, p50: quantile(health, 0.5), p99: quantile(health, 0.99), max: Math.max(...health) },
    repeated: { runs: repeated.length, median: median(repeated), p95: quantile(repeated, 0.95), max: Math.max(...repeated) },
    restart: { runs: afterRestart.length, median: median(afterRestart), all: afterRestart, healthyMedianMs: median(restartHealthy) },
  };
}

function report(r) {
  const ms = (value) => `${value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString('en')} ms`;
  const met = (ok) => (ok ? 'met' : 'MISSED');
  const rows = [
    ['data', `${r.days} day files, ${r.rows.toLocaleString('en')} rows, ${(r.csvBytes / MB).toFixed(1)} MB CSV`, ''],
    ['answer (checked)', `bucket_ms ${r.answer.bucketMs.toLocaleString('en')} (${r.answer.bucketMs / MINUTE_MS} min), ${r.answer.buckets} buckets, counts ${r.answer.rowsInRange.toLocaleString('en')} a field, ${(r.answer.bytes / 1000).toFixed(0)} kB JSON`, ''],
    ['(a) first query (summarising)', ms(r.firstMs), ''],
    ['    /healthz meanwhile p50 / p99 / max', `${ms(r.health.p50)} / ${ms(r.health.p99)} / ${ms(r.health.max)} (${r.health.polls} polls, ${r.health.failures} failed)`, `p99 < ${GOALS.healthP99Ms} ms: ${met(r.health.p99 < GOALS.healthP99Ms && r.health.failures === 0)}`],
    ['    /healthz idle before, p50 / p99 / max', `${ms(r.idleHealth.p50)} / ${ms(r.idleHealth.p99)} / ${ms(r.idleHealth.max)} (${r.idleHealth.polls} polls)`, ''],
    ['    CPU meanwhile (cores)', `server ${r.firstCpuCores.server.toFixed(2)}, bench ${r.firstCpuCores.bench.toFixed(2)}, other processes ${r.firstCpuCores.others.toFixed(2)} (of ${cpus().length})`, ''],
    ['    peak RSS meanwhile', `${r.firstPeakRssMb.toFixed(0)} MB`, ''],
    ['(b) repeated query, median / p95', `${ms(r.repeated.median)} / ${ms(r.repeated.p95)} (${r.repeated.runs} runs)`, `< ${GOALS.repeatedMs} ms: ${met(r.repeated.median < GOALS.repeatedMs)}`],
    ['(c) summarising rate', `${r.summariseMbPerSec.toFixed(1)} MB/s`, `≥ ${GOALS.summariseMbPerSec} MB/s: ${met(r.summariseMbPerSec >= GOALS.summariseMbPerSec)}`],
  ];
  if (r.restart.runs > 0) {
    rows.push(['(d) first query after a restart, median', `${ms(r.restart.median)} (${r.restart.all.map((v) => Math.round(v)).join(', ')} ms)`, '']);
    rows.push(['    summaries on disk', `${r.summaries.files} files, ${(r.summaries.bytes / MB).toFixed(1)} MB; rewritten after restart: ${r.summaries.rewrittenAfterRestart.length === 0 ? 'none' : r.summaries.rewrittenAfterRestart.join(', ')}`, '']);
  }
  console.log(`\n/series over ${r.days} days (${r.query.from} .. ${r.query.to}, points=${r.query.points}), node ${process.version} ${options.nodeFlags.join(' ')}\n`);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
  if (profileDir !== undefined) console.log(`\nprofiles: ${profileDir} (node bench/profile-top.mjs ${join(profileDir, 'first')})`);
}

try {
  const result = await run();
  if (options.json) console.log(JSON.stringify({ ...result, goals: GOALS, node: process.version, nodeFlags: options.nodeFlags, profileDir }));
  else report(result);
} catch (error) {
  progress(`failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  cleanUp();
}
