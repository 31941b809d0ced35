#!/usr/bin/env node
/**
 * Soak test: runs the built server under steady load for a while, sampling
 * its memory and event-loop delay every 10 s, then stops it with SIGTERM and
 * accounts for every acknowledged row. Exits 1 if memory keeps growing or
 * any acknowledged row is missing.
 *
 *   npm run soak                       # 5 minutes, 500 requests/s
 *   npm run soak -- --minutes 1 --rate 2000 --connections 16
 *
 * Load goes to 127.0.0.1 only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HOST, freePort, sleep } from './lib.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '8' },
    'sample-sec': { type: 'string', default: '10' },
  },
});
const durationMs = Number(args.minutes) * 60_000;
const rate = Number(args.rate);
const connections = Number(args.connections);
const sampleMs = Number(args['sample-sec']) * 1000;

if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
  console.log('building…');
  if (spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) process.exit(1);
}

const port = await freePort();
const work = mkdtempSync(join(tmpdir(), 'sensor-ingest-soak-'));
const dataDir = join(work, 'data');
const child = spawn(process.execPath, [join(ROOT, 'dist', 'main.js')], {
  env: { PATH: process.env.PATH, PORT: String(port), HOST, DATA_DIR: dataDir, LOG_DIR: join(work, 'logs'), LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
const url = `http://${HOST}:${port}`;

for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${url}/healthz`)).ok) break;
  } catch {
    if (i > 200) throw new Error('the server did not start');
  }
  await sleep(50);
}

/** Resident memory of the server process (its threads included), in MB, from /proc. */
function rssMb() {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** The server's own p99 event-loop delay, in ms, from its Prometheus metrics. */
async function loopDelayP99Ms() {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)?.[1] ?? NaN) * 1000;
}

// Steady load: `connections` clients, each pacing itself to its share of `rate`.
const acked = new Set();
let sent = 0;
let failed = 0;
const started = Date.now();
const stopAt = started + durationMs;
const intervalMs = (1000 * connections) / rate;
async function client(n) {
  let next = Date.now();
  for (let i = 0; Date.now() < stopAt; i++) {
    const id = `${n}-${i}`;
    sent++;
    try {
      const res = await fetch(`${url}/data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id, t: 20 + Math.random() * 5, h: Math.round(Math.random() * 100), note: 'soak' }),
      });
      if (res.status === 202) acked.add(id);
      else failed++;
      await res.arrayBuffer();
    } catch {
      failed++;
    }
    next += intervalMs;
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

const samples = [];
const sampler = setInterval(async () => {
  const sample = { sec: Math.round((Date.now() - started) / 1000), rssMb: rssMb(), loopP99Ms: await loopDelayP99Ms(), acked: acked.size };
  samples.push(sample);
  console.log(`t=${String(sample.sec).padStart(4)}s  rss=${sample.rssMb.toFixed(1)} MB  loop p99=${sample.loopP99Ms.toFixed(2)} ms  acked=${sample.acked}`);
}, sampleMs);

await Promise.all(Array.from({ length: connections }, (_, n) => client(n)));
clearInterval(sampler);
child.kill('SIGTERM');
const { code } = await exited;

const lines = existsSync(join(dataDir, 'data.csv')) ? readFileSync(join(dataDir, 'data.csv'), 'utf8').trim().split('\n').slice(1) : [];
const found = new Set(lines.map((line) => line.split(',')[1]));
const missing = [...acked].filter((id) => !found.has(id)).length;
const duplicates = lines.length - found.size;

// Memory is flat if, after a warm-up third, the last third's median is not
// more than 10% (and 5 MB) above the middle third's median.
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const third = Math.floor(samples.length / 3);
const middle = median(samples.slice(third, 2 * third).map((s) => s.rssMb));
const last = median(samples.slice(2 * third).map((s) => s.rssMb));
const growing = samples.length >= 6 && last > middle * 1.1 && last - middle > 5;

console.log('\nsoak summary');
console.log(`  duration            ${Math.round((Date.now() - started) / 1000)} s at ${rate} requests/s target, ${connections} connections`);
console.log(`  requests sent       ${sent} (${failed} not 202)`);
console.log(`  rows acknowledged   ${acked.size}`);
console.log(`  rows found          ${lines.length}`);
console.log(`  missing             ${missing}`);
console.log(`  duplicates          ${duplicates}`);
console.log(`  RSS middle → last   ${middle.toFixed(1)} MB → ${last.toFixed(1)} MB (${growing ? 'GROWING' : 'flat'})`);
console.log(`  RSS peak            ${Math.max(...samples.map((s) => s.rssMb)).toFixed(1)} MB`);
console.log(`  loop delay p99 max  ${Math.max(...samples.map((s) => s.loopP99Ms)).toFixed(2)} ms`);
console.log(`  exit code           ${code}`);
rmSync(work, { recursive: true, force: true });
const ok = missing === 0 && duplicates === 0 && !growing && code === 0;
console.log(ok ? 'PASS' : 'FAIL');
process.exit(ok ? 0 : 1);
