/**
 * Helpers shared by the bench scripts (bench.mjs, series.mjs, year-size.mjs,
 * cost.mjs, soak.mjs): their options with --help, the loopback host they use,
 * sleep, a free port, one timed GET on a fresh connection, nearest-rank
 * quantiles, a seeded PRNG, and the node flags of a package.json script.
 * Node built-ins only; nothing here starts or stops a server.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** The benches run their servers on, and send their load to, loopback only. */
export const HOST = '127.0.0.1';

/** The command line's options (node:util parseArgs, strict) with --help added, which prints `usage` and exits 0. */
export function parseOptions(usage, options) {
  const { values } = parseArgs({ options: { ...options, help: { type: 'boolean', default: false } } });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port that is free on `host` now (the OS picks it; the probe is closed before it resolves). */
export function freePort(host = HOST) {
  return new Promise((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** One GET to HOST:port on a fresh connection; resolves to { status, body (UTF-8), ms }. */
export function get(port, path, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const req = request({ host: HOST, port, path, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - startedAt }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The q-quantile (nearest rank) of numbers sorted in ascending order, or undefined for none. */
export function quantileSorted(sorted, q) {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The q-quantile (nearest rank) of numbers in any order (not changed), or NaN for none. */
export function quantile(values, q) {
  return quantileSorted([...values].sort((a, b) => a - b), q) ?? Number.NaN;
}

/** The nearest-rank median: the lower of the middle two for an even count. */
export const median = (values) => quantile(values, 0.5);

/** mulberry32: a small seeded PRNG giving numbers in [0, 1), so every run makes the same values. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The node flags a package.json script (`start`, `collect`) runs with, read
 * from it, so a bench runs the server as `npm start` does and stays in step
 * when the flags change.
 */
export function scriptNodeFlags(root, script) {
  const command = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts?.[script] ?? '';
  const words = command.trim().split(/\s+/);
  if (words[0] !== 'node') throw new Error(`package.json's "${script}" script does not start with node: '${command}'`);
  const flags = [];
  for (const word of words.slice(1)) {
    if (!word.startsWith('-')) break;
    flags.push(word);
  }
  return flags;
}
