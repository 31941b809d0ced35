/**
 * What the bench reads from /proc (Linux only): a process tree, its resident
 * memory and CPU time, and the whole machine's busy time. Threads (piscina,
 * pino's transport) are inside their process's VmRSS and CPU times, so only
 * child processes are added up.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const RSS_SAMPLE_MS = 50;
/** Clock ticks per second in /proc/<pid>/stat (sysconf _SC_CLK_TCK; 100 on Linux unless built otherwise). */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** The pids of `pid` and its descendants, from each process's parent in /proc/<pid>/stat. */
export function processTree(pid) {
  const childrenOf = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name, which may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!childrenOf.has(ppid)) childrenOf.set(ppid, []);
    childrenOf.get(ppid).push(Number(name));
  }
  const tree = [];
  const stack = [pid];
  while (stack.length > 0) {
    const next = stack.pop();
    tree.push(next);
    stack.push(...(childrenOf.get(next) ?? []));
  }
  return tree;
}

/** CPU seconds (user + system, all threads) used so far by a process tree, from /proc/<pid>/stat. */
export function treeCpuSec(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // the process ended between the listing and the read
    }
  }
  return ticks / CLK_TCK;
}

/**
 * CPU seconds all cores spent so far in user and system time, plus time the
 * hypervisor stole, from /proc/stat. Interrupt time is left out: loopback
 * traffic's softirq work is the bench's own.
 */
export function machineBusySec() {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, , , , , steal] = ticks;
  return (user + nice + system + steal) / CLK_TCK;
}

/** VmRSS in kB of one process (all its threads), 0 once it is gone. */
export function vmRssKb(pid) {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Samples the RSS of a process tree every 50 ms (the tree itself is looked
 * up once a second). `peakSince(mark)` gives the largest sample since a mark.
 */
export function createRssSampler(pid) {
  let tree = processTree(pid);
  const samples = [];
  const sample = () => {
    const kb = tree.reduce((sum, p) => sum + vmRssKb(p), 0);
    if (kb > 0) samples.push({ at: performance.now(), kb });
    return kb;
  };
  const rssTimer = setInterval(sample, RSS_SAMPLE_MS);
  const treeTimer = setInterval(() => (tree = processTree(pid)), 1000);
  sample();
  return {
    now: () => sample() / 1024,
    peakMb: (since = 0) => samples.filter((s) => s.at >= since).reduce((max, s) => Math.max(max, s.kb), 0) / 1024,
    stop() {
      clearInterval(rssTimer);
      clearInterval(treeTimer);
    },
  };
}
