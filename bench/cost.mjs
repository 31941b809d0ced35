#!/usr/bin/env node
/**
 * What one request costs (SPEC section 11: "no single request may cost the
 * disk, the memory or the CPU much more than its own size"): bytes added to
 * DATA_DIR and resident memory per byte of body, across adversarial
 * payloads, against a baseline of ordinary readings measured in the same run.
 *
 *   npm run bench:cost                       # every case, disk bound 8x
 *   npm run bench:cost -- --only sparse-empty,gzip-sparse --requests 3
 *   npm run bench:cost -- --disk-bound 4 --json
 *
 * Each case runs on its own server (node with npm start's flags, dist/main.js,
 * default limits, fresh temp DATA_DIR), in order:
 *
 *   spawn ─► /healthz ─► the case's set-up requests (not counted; written)
 *     ─► per measured request: VmRSS ─► reset the peak (/proc/<pid>/clear_refs)
 *        ─► POST ─► wait until written (queue_length 0) ─► VmHWM
 *     ─► disk = all file sizes under DATA_DIR (archives, states included), before and after
 *
 *   disk ratio    bytes added to DATA_DIR / body bytes (decoded: after gzip, as
 *                 MAX_REQUEST_BYTES counts them; the wire ratio is shown beside it)
 *   memory ratio  the median over the case's requests of (VmHWM during the
 *                 request − VmRSS before it) / its body bytes. The baseline's own
 *                 peak (about 1 MB) is GC noise: a case whose peak is not above
 *                 NOISE_FACTOR times it is shown as ~ and not counted as worst
 *
 * Exits 1 when a case's disk ratio passes --disk-bound (default 8), or a run
 * fails; memory is reported, not judged. Linux only (/proc). Load goes to
 * 127.0.0.1; children are killed and temp dirs removed at the end.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { HOST, freePort, parseOptions, scriptNodeFlags, sleep } from './lib.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_BATCH_ROWS = 1000;
const MAX_COLUMNS = 1024;
/** A peak up to this many times the baseline's is taken for GC noise. */
const NOISE_FACTOR = 4;
const KEY_MAX = 128;

const USAGE = `usage: npm run bench:cost -- [options]
  --disk-bound X    fail when bytes on disk per body byte pass X (default 8)
  --requests N      measured requests per case (default 5; the widening case sends 24)
  --only A,B        run only these cases (names as in the table)
  --json            print one JSON object instead of the table
  --help`;

const args = parseOptions(USAGE, {
  'disk-bound': { type: 'string', default: '8' },
  requests: { type: 'string', default: '5' },
  only: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const diskBound = Number(args['disk-bound']);
const requestsPerCase = Number(args.requests);
if (!(diskBound > 0)) usageError(`--disk-bound must be a number above 0, got '${args['disk-bound']}'`);
if (!Number.isInteger(requestsPerCase) || requestsPerCase < 1) usageError(`--requests must be a whole number of at least 1, got '${args.requests}'`);

function usageError(message) {
  process.stderr.write(`bench:cost: ${message}\n${USAGE}\n`);
  process.exit(2);
}

const progress = (message) => process.stderr.write(`bench:cost: ${message}\n`);

// ---------------------------------------------------------------- payloads

/** A key of exactly `length` characters, distinct per (tag, i). */
const longKey = (tag, i, length = KEY_MAX) => `${tag}${i}-`.padEnd(length, 'k');
/** Short distinct keys: 0, 1, … z, 10, … (base 36). */
const shortKey = (i) => i.toString(36);
const json = (value) => ({ type: 'application/json', body: JSON.stringify(value) });

/** One reading with MAX_COLUMNS short keys: makes a file's header as wide as it gets. */
const wideHeader = () => json(Object.fromEntries(Array.from({ length: MAX_COLUMNS }, (_, i) => [shortKey(i), 1])));

/**
 * The cases. `setup` requests build the file the case attacks (not counted);
 * `request(n)` is the n-th measured request: { path, type, body, encoding }.
 */
const CASES = [
  {
    name: 'baseline',
    what: 'ordinary readings: batches of 1000 {"id","t","h","p"}',
    request: (n) =>
      json(Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({ id: n * MAX_BATCH_ROWS + i, t: 21.5, h: 48, p: 1013.2 }))),
  },
  {
    name: 'sparse-empty',
    what: '1000 {} readings against a 1024-column file (each row: received_at and 1024 commas)',
    setup: [wideHeader()],
    request: () => json(Array.from({ length: MAX_BATCH_ROWS }, () => ({}))),
  },
  {
    name: 'sparse-one-cell',
    what: '1000 readings of one short existing key against a 1024-column file',
    setup: [wideHeader()],
    request: (n) => json(Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({ [shortKey((n + i) % MAX_COLUMNS)]: 1 }))),
  },
  {
    name: 'distinct-keys',
    what: '1000 readings, each with its own new key (a 1000-column file per request)',
    request: (n) => json(Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({ [`${shortKey(n)}_${shortKey(i)}`]: 1 }))),
  },
  {
    name: 'new-key-wide-file',
    what: 'one new 128-character key per request against a file of 1000 such columns (a widen each)',
    requests: 24,
    setup: [json(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [longKey('base', i), 1])))],
    request: (n) => json({ [longKey('new', n)]: 1 }),
  },
  {
    name: 'deep-nesting',
    what: '16 levels of 7-character keys over 900 leaves, new leaves each request (a new file of ~120-character columns)',
    request: (n) => {
      let node = Object.fromEntries(Array.from({ length: 900 }, (_, i) => [`${shortKey(n)}${shortKey(i)}`, 1]));
      for (let depth = 15; depth > 0; depth--) node = { [`lvl${String(depth).padStart(4, '0')}`]: node };
      return json(node);
    },
  },
  {
    name: 'long-keys',
    what: 'one reading of 1024 keys of 128 characters, empty values, new keys each request',
    request: (n) => json(Object.fromEntries(Array.from({ length: MAX_COLUMNS }, (_, i) => [longKey(`r${n}k`, i), '']))),
  },
  {
    name: 'quotes-json',
    what: '1000 readings, a 500-quote cell each (JSON \\" becomes CSV "")',
    request: (n) => json(Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({ id: n * MAX_BATCH_ROWS + i, q: '"'.repeat(500) }))),
  },
  {
    name: 'quotes-form',
    what: 'a form field of raw quotes and commas (1 byte each; doubled and quoted in CSV)',
    request: (n) => ({ type: 'application/x-www-form-urlencoded', body: `id=${n}&q=${'",'.repeat((MAX_REQUEST_BYTES - 40) / 2)}` }),
  },
  {
    name: 'numbers',
    what: '1000 readings of 1-character keys set to 9e20 (printed as 21 digits)',
    request: () => ({ type: 'application/json', body: `[${Array.from({ length: MAX_BATCH_ROWS }, () => `{${Array.from({ length: 36 }, (_, k) => `"${shortKey(k)}":9e20`).join(',')}}`).join(',')}]` }),
  },
  {
    name: 'line-protocol',
    what: '1000 lines "m f=1" without a timestamp (time and received_at added)',
    request: () => ({ path: '/api/v2/write?bucket=data&precision=ns', type: 'text/plain', body: 'm f=1\n'.repeat(MAX_BATCH_ROWS) }),
  },
  {
    name: 'ndjson-sparse',
    what: '1000 NDJSON lines of {} against a 1024-column file',
    setup: [wideHeader()],
    request: () => ({ type: 'application/x-ndjson', body: '{}\n'.repeat(MAX_BATCH_ROWS) }),
  },
  {
    name: 'gzip-sparse',
    what: 'sparse-empty, gzipped',
    setup: [wideHeader()],
    request: () => ({ ...json(Array.from({ length: MAX_BATCH_ROWS }, () => ({}))), encoding: 'gzip' }),
  },
  {
    name: 'gzip-1mib',
    what: 'ordinary readings, about 1 MiB decoded, gzipped',
    request: (n) => ({
      ...json(Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({ id: n * MAX_BATCH_ROWS + i, note: 'x'.repeat(1000) }))),
      encoding: 'gzip',
    }),
  },
];

// ---------------------------------------------------------------- servers

const children = new Set();
const workDirs = new Set();
function cleanUp() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
}
process.once('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanUp();
    process.exit(130);
  });
}

function buildIfNeeded() {
  try {
    statSync(join(ROOT, 'dist', 'main.js'));
  } catch {
    progress('building (npm run build)…');
    if (spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] }).status !== 0) throw new Error('npm run build failed');
  }
}

/** One HTTP request; resolves to { status, body }. */
function send(port, method, path, { type, body, encoding } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (type !== undefined) headers['content-type'] = type;
    if (encoding !== undefined) headers['content-encoding'] = encoding;
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = request({ host: HOST, port, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function startServer() {
  const work = mkdtempSync(join(tmpdir(), 'sensor-ingest-cost-'));
  workDirs.add(work);
  const dataDir = join(work, 'data');
  const port = await freePort();
  const env = { PATH: process.env.PATH, PORT: String(port), HOST, DATA_DIR: dataDir, LOG_DIR: join(work, 'logs'), LOG_LEVEL: 'warn' };
  // The same node flags as npm start, the systemd unit and the PM2 config.
  const child = spawn(process.execPath, [...scriptNodeFlags(ROOT, 'start'), join(ROOT, 'dist', 'main.js')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited during start-up: ${stderr.trim()}`);
    try {
      if ((await send(port, 'GET', '/healthz')).status === 200) break;
    } catch {
      // not listening yet: poll again
    }
    if (Date.now() > deadline) throw new Error(`the server was not healthy within 30 s: ${stderr.trim()}`);
    await sleep(10);
  }
  return { port, dataDir, child, work };
}

function stopServer(server) {
  server.child.kill('SIGKILL');
  children.delete(server.child);
  rmSync(server.work, { recursive: true, force: true });
  workDirs.delete(server.work);
}

/** Every file's size under `dir`, recursively (lock directories hold nothing). */
function diskBytes(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += diskBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

/** VmRSS and VmHWM of the server (its threads included), in bytes. */
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resets VmHWM to the current RSS (Linux 4.0+, "5" in clear_refs). */
function resetPeak(pid) {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function waitWritten(port) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const metrics = JSON.parse((await send(port, 'GET', '/metrics?format=json')).body);
    if (metrics.queue_length === 0) return;
    if (Date.now() > deadline) throw new Error(`rows still queued after 60 s (${metrics.queue_length})`);
    await sleep(5);
  }
}

async function post(port, payload) {
  const decoded = Buffer.from(payload.body, 'utf8');
  const wire = payload.encoding === 'gzip' ? gzipSync(decoded) : decoded;
  const answer = await send(port, 'POST', payload.path ?? '/data', { type: payload.type, body: wire, encoding: payload.encoding });
  if (answer.status >= 300) throw new Error(`POST ${payload.path ?? '/data'} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
  return { wire: wire.length, decoded: decoded.length };
}

// ---------------------------------------------------------------- one case

async function measure(testCase) {
  const server = await startServer();
  try {
    for (const payload of testCase.setup ?? []) await post(server.port, payload);
    await waitWritten(server.port);
    await sleep(200); // let the set-up's garbage go before the first measurement
    const diskBefore = diskBytes(server.dataDir);
    const rssBefore = memory(server.child.pid).rss;
    let wire = 0;
    let decoded = 0;
    const peaks = [];
    const count = testCase.requests ?? requestsPerCase;
    for (let n = 0; n < count; n++) {
      const payload = testCase.request(n);
      const before = memory(server.child.pid).rss;
      resetPeak(server.child.pid);
      const sent = await post(server.port, payload);
      await waitWritten(server.port);
      const peak = memory(server.child.pid).hwm;
      wire += sent.wire;
      decoded += sent.decoded;
      peaks.push({ bytes: peak - before, ratio: (peak - before) / sent.decoded });
    }
    const diskAdded = diskBytes(server.dataDir) - diskBefore;
    const rssAfter = memory(server.child.pid).rss;
    const median = peaks.sort((a, b) => a.ratio - b.ratio)[Math.floor((peaks.length - 1) / 2)];
    return {
      name: testCase.name,
      what: testCase.what,
      requests: count,
      wireBytes: wire,
      decodedBytes: decoded,
      diskBytes: diskAdded,
      diskRatio: diskAdded / decoded,
      diskRatioWire: diskAdded / wire,
      peakRssBytes: median.bytes,
      memoryRatio: median.ratio,
      retainedRssBytes: rssAfter - rssBefore,
    };
  } finally {
    stopServer(server);
  }
}

// ---------------------------------------------------------------- report

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const times = (ratio) => `${ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(0)}x`;

function printTable(report) {
  const header = ['case', 'reqs', 'sent (wire)', 'body', 'disk added', 'disk/body', 'disk/wire', 'vs base', 'peak RSS Δ (median)', 'mem/body', 'RSS kept Δ'];
  const rows = report.cases.map((c) => [
    c.name,
    String(c.requests),
    kb(c.wireBytes),
    kb(c.decodedBytes),
    kb(c.diskBytes),
    times(c.diskRatio),
    times(c.diskRatioWire),
    times(c.diskRatio / report.baselineDiskRatio),
    kb(c.peakRssBytes),
    `${c.memoryNoise ? '~' : ''}${times(c.memoryRatio)}`,
    kb(c.retainedRssBytes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  console.log('');
  for (const c of report.cases) console.log(`  ${c.name}: ${c.what}`);
  console.log('');
  const { worstDisk, worstDiskWire, worstMemory } = report;
  console.log(`worst disk ratio: ${times(worstDisk.diskRatio)} bytes on disk per body byte (${worstDisk.name}); bound ${diskBound}x`);
  console.log(`worst disk ratio per byte on the wire: ${times(worstDiskWire.diskRatioWire)} (${worstDiskWire.name})`);
  if (worstMemory === null) console.log(`worst memory ratio: none above the noise (${NOISE_FACTOR}x the baseline's peak)`);
  else {
    console.log(
      `worst memory ratio: ${times(worstMemory.memoryRatio)} peak RSS growth per body byte (${worstMemory.name}, ${kb(worstMemory.peakRssBytes)} for a ${kb(worstMemory.decodedBytes / worstMemory.requests)} body)`,
    );
  }
  const baseline = report.cases.find((c) => c.name === 'baseline');
  console.log(`baseline: ${times(baseline.diskRatio)} on disk and ${times(baseline.memoryRatio)} in memory per body byte; its ${kb(baseline.peakRssBytes)} peak is the noise floor (~: within ${NOISE_FACTOR}x of it)`);
  if (report.overBound.length > 0) console.log(`over the disk bound: ${report.overBound.join(', ')}`);
}

let exitCode = 0;
try {
  buildIfNeeded();
  const only = args.only?.split(',').map((name) => name.trim());
  const unknown = only?.filter((name) => !CASES.some((c) => c.name === name)) ?? [];
  if (unknown.length > 0) usageError(`--only: no case named ${unknown.join(', ')}; cases: ${CASES.map((c) => c.name).join(', ')}`);
  const chosen = CASES.filter((c) => c.name === 'baseline' || only === undefined || only.includes(c.name));
  const cases = [];
  for (const testCase of chosen) {
    progress(`${testCase.name}…`);
    cases.push(await measure(testCase));
  }
  const worst = (key, among = cases) => among.reduce((a, b) => (b[key] > a[key] ? b : a));
  const baseline = cases.find((c) => c.name === 'baseline');
  for (const c of cases) c.memoryNoise = c.peakRssBytes <= NOISE_FACTOR * baseline.peakRssBytes;
  const aboveNoise = cases.filter((c) => !c.memoryNoise);
  const report = {
    diskBound,
    baselineDiskRatio: baseline.diskRatio,
    cases,
    worstDisk: worst('diskRatio'),
    worstDiskWire: worst('diskRatioWire'),
    worstMemory: aboveNoise.length === 0 ? null : worst('memoryRatio', aboveNoise),
    overBound: cases.filter((c) => c.diskRatio > diskBound).map((c) => c.name),
  };
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else printTable(report);
  if (report.overBound.length > 0) exitCode = 1;
} catch (error) {
  progress(`failed: ${error.stack ?? error}`);
  exitCode = 1;
} finally {
  cleanUp();
}
process.exit(exitCode);
