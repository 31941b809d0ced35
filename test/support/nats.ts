/**
 * Real nats-server processes for tests: one JetStream server, or a 3-node
 * JetStream cluster on loopback, each on free ports with temp store dirs.
 *
 * Every server started here is tracked; a test file that starts any calls
 * `afterAll(stopAllNats)` so no nats-server outlives it (and a process 'exit'
 * handler SIGKILLs whatever is still running, as a last resort).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { delimiter, join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { TestContext } from 'vitest';
import { freePort } from './http-client.js';
import { tempDir } from './temp-dir.js';
import { waitFor } from './wait.js';

const SKIP_REASON = 'nats-server is not installed (Debian package nats-server; .ci/run installs it)';

/** The nats-server binary: on PATH, else Debian's /usr/sbin/nats-server; undefined if neither. */
export function natsServerPath(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin', '/usr/local/bin']) {
    const candidate = join(dir, 'nats-server');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * First line of a test that needs nats-server: skips the test when the binary
 * is missing, except under CI, where a missing binary is an error (.ci/run installs it).
 */
export function requireNatsServer(context: Pick<TestContext, 'skip'>): string {
  const path = natsServerPath();
  if (path !== undefined) return path;
  if (process.env.CI) throw new Error(`${SKIP_REASON}, but CI is set: CI must run the NATS tests`);
  return context.skip(SKIP_REASON);
}

/** One nats-server process that can be stopped, killed and started again on the same ports and store. */
export interface NatsServer {
  /** The server_name (`-n`; a cluster node's name in `cluster.leader`). */
  readonly name: string;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** Client port. */
  readonly port: number;
  /** HTTP monitoring port (`/healthz`, `/varz`, `/jsz`). */
  readonly monitorPort: number;
  /** JetStream store dir (`<storeDir>/jetstream` holds the data). */
  readonly storeDir: string;
  /** The current process's pid; undefined while stopped. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The file stdout and stderr go to (appended across restarts). */
  readonly logFile: string;
  /** The last `lines` lines of the log. */
  logTail(lines?: number): string;
  /** SIGTERM, then wait for the exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  /** Starts again (stopping first if running) on the same ports, config and store dir; resolves once healthy. */
  restart(): Promise<void>;
}

export interface NatsCluster {
  /** Every node's client url, node order. */
  readonly urls: string[];
  readonly nodes: NatsServer[];
  /** The node with this server name (throws if none). */
  node(name: string): NatsServer;
  /** Stops every node that runs (SIGTERM, wait) and removes the temp dir. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- tracking

const running = new Set<ChildProcess>();
const disposers: Array<() => void> = [];

process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Kills every nats-server this module started that still runs, and removes the temp dirs it made. */
export async function stopAllNats(): Promise<void> {
  await Promise.all([...running].map((child) => killAndWait(child, 'SIGKILL')));
  for (const dispose of disposers.splice(0)) dispose();
}

/** Pids of the nats-server processes started here that still run. */
export function runningNatsPids(): number[] {
  return [...running].map((child) => child.pid).filter((pid): pid is number => pid !== undefined);
}

// ---------------------------------------------------------------- processes

function tail(file: string, lines = 40): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function killAndWait(child: ChildProcess, signal: NodeJS.Signals, graceMs = 15_000): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  const outcome = await Promise.race([gone, late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    child.kill('SIGKILL');
    await gone;
  }
}

/** True once the client port answers with the protocol's INFO line. */
function answersInfo(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    let seen = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.startsWith('INFO ')) done(true);
    });
  });
}

async function healthz(monitorPort: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(1_000) });
    return response.ok;
  } catch {
    return false;
  }
}

interface ProcessSpec {
  name: string;
  port: number;
  monitorPort: number;
  storeDir: string;
  logFile: string;
  args: string[];
}

/**
 * A handle over one server's spec. `start` spawns and waits until it is
 * ready: `/healthz` is ok (JetStream up; on a cluster node, the meta leader
 * known and the node current) and the client port says INFO.
 */
function handle(spec: ProcessSpec, binary: string): NatsServer & { start(timeoutMs?: number): Promise<void> } {
  let child: ChildProcess | undefined;
  const self = {
    name: spec.name,
    url: `nats://127.0.0.1:${spec.port}`,
    port: spec.port,
    monitorPort: spec.monitorPort,
    storeDir: spec.storeDir,
    logFile: spec.logFile,
    get pid() {
      return child !== undefined && !exited(child) ? child.pid : undefined;
    },
    get running() {
      return child !== undefined && !exited(child);
    },
    logTail: (lines = 40) => tail(spec.logFile, lines),
    async start(timeoutMs = 20_000): Promise<void> {
      if (self.running) return;
      const log = openSync(spec.logFile, 'a');
      const started = spawn(binary, spec.args, { stdio: ['ignore', log, log] });
      closeSync(log);
      child = started;
      running.add(started);
      let spawnError: Error | undefined;
      started.once('exit', () => running.delete(started));
      started.once('error', (error) => {
        spawnError = error;
        running.delete(started);
      });
      try {
        await waitFor(
          async () => {
            if (spawnError) throw spawnError;
            if (exited(started)) throw new Error(`exited with ${started.exitCode ?? started.signalCode}`);
            return (await healthz(spec.monitorPort)) && (await answersInfo(spec.port));
          },
          `nats-server ${spec.name} on port ${spec.port} to be ready`,
          timeoutMs,
        );
      } catch (error) {
        await killAndWait(started, 'SIGKILL');
        throw new Error(`nats-server ${spec.name} did not start: ${(error as Error).message}\n--- ${spec.logFile} ---\n${tail(spec.logFile)}`, { cause: error });
      }
    },
    async stop(): Promise<void> {
      if (child) await killAndWait(child, 'SIGTERM');
    },
    async kill(): Promise<void> {
      if (child) await killAndWait(child, 'SIGKILL');
    },
    async restart(): Promise<void> {
      await self.stop();
      await self.start();
    },
  };
  return self;
}

// ---------------------------------------------------------------- one server

/**
 * One `nats-server -js` on 127.0.0.1, free client and monitor ports, a temp
 * store dir (or the one given; it is then never removed here). Resolves once
 * it accepts clients.
 */
export async function startNats(options: { storeDir?: string; port?: number; extraArgs?: string[] } = {}): Promise<NatsServer> {
  const binary = natsServerPath();
  if (binary === undefined) throw new Error(SKIP_REASON);
  const dir = tempDir('nats-');
  disposers.push(dir.cleanup);
  const storeDir = options.storeDir ?? join(dir.path, 'store');
  mkdirSync(storeDir, { recursive: true });
  // A port that was free a moment ago may be taken by the time nats-server binds it: try fresh ones.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const monitorPort = await freePort();
    const name = `nats-${port}`;
    const server = handle(
      {
        name,
        port,
        monitorPort,
        storeDir,
        logFile: join(dir.path, 'nats-server.log'),
        args: ['-js', '-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort), '-sd', storeDir, '-n', name, ...(options.extraArgs ?? [])],
      },
      binary,
    );
    try {
      await server.start();
      return server;
    } catch (error) {
      if (attempt >= 3 || options.port !== undefined || !/address already in use/.test((error as Error).message)) throw error;
    }
  }
}

// ---------------------------------------------------------------- a cluster

/** What a cluster node's config needs: its name, ports, store dir and every node's cluster port. */
export interface ClusterNodeSpec {
  readonly name: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly clusterPort: number;
  readonly storeDir: string;
  readonly clusterName: string;
  /** The cluster ports of all nodes, node order (this one's included). */
  readonly routes: number[];
}

/** The config file of one loopback cluster node (what startNatsCluster writes unless told otherwise). */
export function loopbackNodeConfig(node: ClusterNodeSpec): string {
  return [
    `server_name: ${node.name}`,
    `listen: 127.0.0.1:${node.port}`,
    `http: 127.0.0.1:${node.monitorPort}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(node.storeDir)}`,
    '  max_memory_store: 64MB',
    '  max_file_store: 1GB',
    '}',
    'cluster {',
    `  name: ${node.clusterName}`,
    `  listen: 127.0.0.1:${node.clusterPort}`,
    '  routes: [',
    ...node.routes.map((port) => `    nats-route://127.0.0.1:${port}`),
    '  ]',
    '}',
    '',
  ].join('\n');
}

export interface ClusterOptions {
  /** Server names, one a node (default n1, n2, ...); each config must use its node's. */
  names?: string[];
  /** The config file text of a node (default loopbackNodeConfig). */
  config?: (node: ClusterNodeSpec) => string;
}

interface Jsz {
  meta_cluster?: { leader?: string; cluster_size?: number };
}

async function metaLeader(monitorPort: number): Promise<string | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal: AbortSignal.timeout(1_000) });
    if (!response.ok) return undefined;
    const jsz = (await response.json()) as Jsz;
    return jsz.meta_cluster?.leader || undefined;
  } catch {
    return undefined;
  }
}

/**
 * A JetStream cluster of `size` nodes on loopback (names n1, n2, ...), each
 * with its own client, cluster and monitor port and store dir, written as
 * config files in a temp dir (`<dir>/<name>/nats.conf`). Resolves once every
 * node is healthy, all agree on the meta leader, and the JetStream API answers.
 */
export async function startNatsCluster(size = 3, options: ClusterOptions = {}): Promise<NatsCluster> {
  const binary = natsServerPath();
  if (binary === undefined) throw new Error(SKIP_REASON);
  const dir = tempDir('nats-cluster-');
  disposers.push(dir.cleanup);
  const names = options.names ?? Array.from({ length: size }, (_, i) => `n${i + 1}`);
  if (names.length !== size || new Set(names).size !== size) throw new Error(`need ${size} distinct names, got ${names.join(', ')}`);
  const ports = [];
  for (const name of names) {
    ports.push({ name, port: await freePort(), monitorPort: await freePort(), clusterPort: await freePort() });
  }
  const routes = ports.map((p) => p.clusterPort);
  const clusterName = `test-${process.pid}-${routes[0]}`;
  const nodes = ports.map((p) => {
    const spec: ClusterNodeSpec = { ...p, storeDir: join(dir.path, p.name, 'store'), clusterName, routes };
    mkdirSync(spec.storeDir, { recursive: true });
    const config = join(dir.path, p.name, 'nats.conf');
    writeFileSync(config, (options.config ?? loopbackNodeConfig)(spec));
    return handle({ ...spec, logFile: join(dir.path, p.name, 'nats-server.log'), args: ['-c', config] }, binary);
  });
  const urls = nodes.map((node) => node.url);
  const cluster: NatsCluster = {
    urls,
    nodes,
    node(name) {
      const found = nodes.find((node) => node.name === name);
      if (found === undefined) throw new Error(`no node named ${JSON.stringify(name)} (nodes: ${nodes.map((n) => n.name).join(', ')})`);
      return found;
    },
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
      dir.cleanup();
    },
  };
  try {
    // All at once: a node's /healthz is ok only once the meta group has a leader, which needs a quorum.
    await Promise.all(nodes.map((node) => node.start(30_000)));
    await waitFor(
      async () => {
        const leaders = await Promise.all(nodes.map((node) => metaLeader(node.monitorPort)));
        return leaders[0] !== undefined && leaders.every((leader) => leader === leaders[0]);
      },
      'the cluster to agree on a meta leader',
      30_000,
    );
    const nc = await connect({ servers: urls });
    try {
      const jsm = await jetstreamManager(nc, { timeout: 1_000, checkAPI: false });
      await waitFor(
        () =>
          jsm.getAccountInfo().then(
            () => true,
            () => false,
          ),
        'the JetStream API to answer',
      );
    } finally {
      await nc.close();
    }
  } catch (error) {
    const logs = nodes.map((node) => `--- ${node.name} (${node.logFile}) ---\n${node.logTail(20)}`).join('\n');
    await Promise.all(nodes.map((node) => node.kill()));
    throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
  }
  return cluster;
}

/**
 * The server name of the node leading `streamName` (its RAFT leader), asked
 * of any of `urls`; waits while the stream has no leader (just created, or
 * mid-election).
 */
export async function streamLeader(urls: string | string[], streamName: string, timeoutMs = 20_000): Promise<string> {
  const nc = await connect({ servers: urls });
  try {
    // No API check and a short timeout: while the meta leader is being re-elected
    // (it may have been the killed node too) requests go unanswered.
    const jsm = await jetstreamManager(nc, { timeout: 1_000, checkAPI: false });
    return await waitFor(
      async () => {
        try {
          return (await jsm.streams.info(streamName)).cluster?.leader || undefined;
        } catch {
          return undefined;
        }
      },
      `stream ${streamName} to have a leader`,
      timeoutMs,
    );
  } finally {
    await nc.close();
  }
}

/** `nats-server -c <file> -t`: the config parses. Status 0 and the server's output. */
export function checkNatsConfig(file: string): { status: number | null; output: string } {
  const binary = natsServerPath();
  if (binary === undefined) throw new Error(SKIP_REASON);
  const result = spawnSync(binary, ['-c', file, '-t'], { encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

