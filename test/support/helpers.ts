/**
 * Shared test helpers: temp directories, a silent logger, a real server
 * process on a free port, and CSV reading.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach } from 'vitest';
import { Registry } from 'prom-client';
import { createApp } from '../../src/ingest/app.js';
import { type EventHubOptions, createEventHub } from '../../src/ingest/dashboard/event-hub.js';
import { createLivePoints } from '../../src/ingest/dashboard/live-points.js';
import { type Config, loadConfig } from '../../src/shared/config.js';
import { createHistory } from '../../src/ingest/history.js';
import { createIdempotencyStore } from '../../src/ingest/idempotency.js';
import type { Lifecycle } from '../../src/ingest/lifecycle.js';
import { createMetrics } from '../../src/server/metrics.js';
import { createStreamActivity } from '../../src/server/stream-activity.js';
import type { BatchResult } from '../../src/writer/task.js';
import { type BatchRunner, createInlineRunner } from '../../src/writer/runners.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const MAIN = join(ROOT, 'dist', 'main.js');
/** The collector's entry (`npm run collect`). */
export const COLLECT = join(ROOT, 'dist', 'collect.js');

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'sensor-ingest-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A logger that keeps its lines in memory, for asserting on log messages. */
export function memoryLogger(level = 'info'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** A config with test-friendly defaults and the given overrides (as environment strings). */
export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({ DATA_DIR: dataDir, LOG_DIR: join(dataDir, 'logs'), ...env });
}

/** Parses a CSV file into records (header first); [] if the file does not exist. */
export function readCsv(path: string): string[][] {
  if (!existsSync(path)) return [];
  return parse(readFileSync(path, 'utf8'), { relaxColumnCount: false }) as string[][];
}

/** The file's bytes as text, or null if it does not exist. */
export function fileText(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Every file in a directory, sorted, without lock directories. */
export function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => !name.endsWith('.lock') && !name.startsWith('.'))
    .sort();
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<Awaited<T>>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Parsed JSON log lines from stdout. */
  logLines(): Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal) once the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs the built server (`node dist/main.js`) with the given environment. */
export function runServer(env: Record<string, string>, entry = MAIN, cwd = ROOT): ServerProcess & { port: number } {
  const child = spawn(process.execPath, [entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  const port = Number(env.PORT ?? 0);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    exited,
    output: () => output,
    logLines: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{') && line.endsWith('}'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/** SIGKILLs a server a test left running, and waits for it to exit; nothing if it has exited. */
export async function killServer(server: ServerProcess | undefined): Promise<void> {
  if (server === undefined) return;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  await server.exited;
}

/**
 * Starts the built server on a free port with temp-style directories and
 * waits until `/healthz` answers.
 */
export async function startServer(env: Record<string, string>, entry = MAIN): Promise<ServerProcess> {
  const port = await freePort();
  const server = runServer({ HOST: '127.0.0.1', PORT: String(port), ...env }, entry);
  let exitedEarly = false;
  void server.exited.then(() => {
    exitedEarly = true;
  });
  await waitFor(async () => {
    if (exitedEarly) throw new Error(`server exited during start-up:\n${server.output()}`);
    try {
      return (await fetch(`${server.url}/healthz`)).ok;
    } catch {
      return false;
    }
  }, 'the server to answer /healthz');
  return server;
}

/** POSTs JSON; returns status, headers and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? null : JSON.parse(text) };
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  });
  await Promise.all(workers);
  return results;
}

export interface WorldOptions {
  env?: Record<string, string>;
  runner?: BatchRunner;
  now?: () => number;
  /** Node's process metrics in /metrics, as the server has them (off by default: they are slow to collect). */
  defaultMetrics?: boolean;
  /** The dashboard's event hub settings (client cap, keep-alive period). */
  eventHub?: EventHubOptions;
}

/** The app as main builds it, on an inline writer and a fresh registry, logging into memory. */
export function buildWorld(
  dataDir: string,
  { env = {}, runner = createInlineRunner(), now = Date.now, defaultMetrics = false, eventHub: hubOptions }: WorldOptions = {},
) {
  const config = testConfig(dataDir, env);
  const { logger, lines } = memoryLogger();
  const activity = createStreamActivity(config.streams, now);
  const history = createHistory(config.historyMax);
  let writer: Writer | undefined;
  const queueLength = () => writer?.length ?? 0;
  const metrics = createMetrics({ registry: new Registry(), config, activity, queueLength, defaultMetrics });
  writer = createWriter({ config, runner, logger, events: metrics.writerEvents });
  const lifecycle: Lifecycle = { closing: false };
  const idempotency = createIdempotencyStore({ windowSec: config.idempotencyWindowSec, maxKeys: config.idempotencyMaxKeys, now });
  const live = createLivePoints({ streams: config.streams, quietAfterSec: config.inactivityWarnSec, now, activity });
  const eventHub = createEventHub(hubOptions);
  const app = createApp({ config, logger, writer, metrics, history, activity, idempotency, lifecycle, live, eventHub, version: '9.9.9', now });
  return { app, writer, metrics, history, activity, idempotency, lines, lifecycle, config, logger, queueLength, live, eventHub };
}

/** A runner that holds every batch until released: the queue fills as a stalled disk would fill it. */
export function heldRunner(): BatchRunner & { release: () => void } {
  const inline = createInlineRunner();
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  return { ...inline, run: async (task): Promise<BatchResult> => (await gate, inline.run(task)), release: () => open() };
}

export type World = ReturnType<typeof buildWorld>;

/**
 * For a test file of app tests: a fresh temp dir per test, worlds built in
 * it, and every writer closed and the dir removed after each test.
 */
export function setUpWorlds(): { readonly dir: string; readonly writer: Writer; world(options?: WorldOptions): World } {
  let dir: ReturnType<typeof tempDir> | undefined;
  const built: World[] = [];
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    for (const { writer, eventHub } of built.splice(0)) {
      eventHub.close();
      await writer.close();
    }
    dir?.cleanup();
  });
  return {
    get dir() {
      return (dir as ReturnType<typeof tempDir>).path;
    },
    get writer() {
      const last = built.at(-1);
      if (last === undefined) throw new Error('no world built in this test yet');
      return last.writer;
    },
    world(options = {}) {
      const world = buildWorld((dir as ReturnType<typeof tempDir>).path, options);
      built.push(world);
      return world;
    },
  };
}
