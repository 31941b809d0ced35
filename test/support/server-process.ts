/**
 * The built server (or collector) as a child process: run it with an
 * environment, start it on a free port and wait until it answers, kill it,
 * and, for a test file, have every process it started killed after each test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { answers200, freePort } from './http-client.js';
import { MAIN, ROOT } from './paths.js';
import { waitFor } from './wait.js';

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

/** DATA_DIR and LOG_DIR as `<root>/data` and `<root>/logs`, and `extra`. */
export function serverEnv<Extra extends Record<string, string>>(root: string, extra?: Extra): { DATA_DIR: string; LOG_DIR: string } & Extra {
  return { DATA_DIR: join(root, 'data'), LOG_DIR: join(root, 'logs'), ...(extra as Extra) };
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
 * Waits for the server's JSON log line with this `msg` on stdout, and returns
 * it: logs go through pino's transport thread, so a line may trail the
 * HTTP answers.
 */
export function logLine(server: ServerProcess, msg: string, timeoutMs?: number): Promise<Record<string, unknown>> {
  return waitFor(() => server.logLines().find((line) => line.msg === msg), `the '${msg}' log line`, timeoutMs);
}

export interface StartOptions {
  /** The path that must answer 200 before the server counts as started (default /healthz). */
  readonly ready?: string;
  readonly timeoutMs?: number;
  /** The working directory (default the checkout). */
  readonly cwd?: string;
}

/**
 * Starts the built server on a free port (HOST 127.0.0.1 unless `env` says
 * otherwise) and waits until `/healthz` answers; a server that exits or
 * does not answer in time is killed, and the error carries its output.
 */
export async function startServer(env: Record<string, string>, entry = MAIN, { ready = '/healthz', timeoutMs = 20_000, cwd = ROOT }: StartOptions = {}): Promise<ServerProcess> {
  const port = await freePort();
  const server = runServer({ HOST: '127.0.0.1', PORT: String(port), ...env }, entry, cwd);
  let exitedEarly = false;
  void server.exited.then(() => {
    exitedEarly = true;
  });
  try {
    await waitFor(
      async () => {
        if (exitedEarly) throw new Error(`server exited during start-up:\n${server.output()}`);
        return answers200(`${server.url}${ready}`);
      },
      `the server to answer ${ready}`,
      timeoutMs,
    );
  } catch (error) {
    await killServer(server);
    throw error;
  }
  return server;
}

/**
 * For a test file that runs server processes: `start` and `run` are
 * startServer and runServer, and whatever they started is SIGKILLed after
 * each test if it still runs, before the test's temp dirs (useTempDir,
 * testDir) are removed. Vitest runs afterEach hooks last registered first:
 * a hook that must run after the kill (an unmount) is registered before
 * this call.
 */
export function useServers(): {
  start: (env: Record<string, string>, entry?: string, options?: StartOptions) => Promise<ServerProcess>;
  run: (env: Record<string, string>, entry?: string, cwd?: string) => ServerProcess;
} {
  const started: ServerProcess[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map(killServer));
  });
  return {
    start: async (env, entry, options) => {
      const server = await startServer(env, entry, options);
      started.push(server);
      return server;
    },
    run: (env, entry, cwd) => {
      const server = runServer(env, entry, cwd);
      started.push(server);
      return server;
    },
  };
}
