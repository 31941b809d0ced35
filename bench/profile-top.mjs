#!/usr/bin/env node
/**
 * Prints the functions with the most self time in a V8 .cpuprofile (as
 * written by `node --cpu-prof`, e.g. by `npm run bench -- --cpu-prof`).
 *
 *   node bench/profile-top.mjs <file.cpuprofile | dir> [--top 10] [--all-threads]
 *
 * Given a directory, it reads the main thread's profiles in it (thread id 0
 * in Node's file name CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile), or
 * every profile with --all-threads, and adds them up. Self time is the sum
 * of the sampling intervals whose sample landed in that function itself
 * (not in what it called), grouped by function name, file and line.
 * `(idle)` is left out of the list and shown on its own line. A thread
 * parked in Atomics.wait (piscina's idle worker) shows as self time in the
 * function that waits, though it uses no CPU: read worker profiles with that
 * in mind.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '10' },
    'all-threads': { type: 'boolean', default: false },
  },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: node bench/profile-top.mjs <file.cpuprofile | dir> [--top 10] [--all-threads]\n');
  process.exit(2);
}
const top = Number(args.top);
const target = positionals[0];

/** CPU.20261123.101500.1234.0.001.cpuprofile → thread id 0 (the main thread). */
const threadOf = (name) => Number(/^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(name)?.[1] ?? NaN);

const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((name) => name.endsWith('.cpuprofile') && (args['all-threads'] || threadOf(name) === 0))
      .map((name) => join(target, name))
  : [target];
if (files.length === 0) {
  process.stderr.write(`profile-top: no ${args['all-threads'] ? '' : 'main-thread '}.cpuprofile in ${target}\n`);
  process.exit(1);
}

/** A short place for a function: the repo-relative path, node_modules from the package on, or node:internal. */
function place(url, line) {
  if (url === '') return '';
  let path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) path = path.slice(nm + 1);
  else if (path.startsWith('/')) path = shortPath(path);
  return `${path}:${line + 1}`;
}

/** Relative to the working directory when under it, else absolute. */
function shortPath(path) {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

const selfUs = new Map();
let totalUs = 0;
let idleUs = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodeById = new Map(profile.nodes.map((node) => [node.id, node]));
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; charge it to sample i's node,
    // as Chrome DevTools does (the next delta would work as well).
    const us = Math.max(0, timeDeltas[i] ?? 0);
    const { functionName, url, lineNumber } = nodeById.get(samples[i]).callFrame;
    totalUs += us;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const key = `${functionName || '(anonymous)'}\t${place(url, lineNumber)}`;
    selfUs.set(key, (selfUs.get(key) ?? 0) + us);
  }
}

const busyUs = totalUs - idleUs;
const ms = (us) => (us / 1000).toFixed(1);
const pct = (us, of) => (of > 0 ? ((100 * us) / of).toFixed(1) : '0.0');
console.log(`profiles: ${files.map((file) => shortPath(resolve(file))).join(', ')}`);
console.log(`sampled ${ms(totalUs)} ms: busy ${ms(busyUs)} ms, idle ${ms(idleUs)} ms (${pct(idleUs, totalUs)} %)`);
console.log(`top ${top} by self time (share of busy time):`);
const rows = [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, top);
rows.forEach(([key, us], i) => {
  const [name, where] = key.split('\t');
  console.log(`${String(i + 1).padStart(3)}. ${ms(us).padStart(9)} ms ${pct(us, busyUs).padStart(5)} %  ${name}${where === '' ? '' : `  ${where}`}`);
});
