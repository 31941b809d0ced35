/**
 * The one process runner for both entry points (src/main.ts, src/collect.ts):
 *
 *   config (exit 78 on a bad one) ─► DATA_DIR and LOG_DIR ─► logger
 *     ─► program.start (repair, writer, the app) ─► listen ─► 'ready' (PM2)
 *     ─► '<name> started'
 *   SIGTERM/SIGINT ─► program.stop under SHUTDOWN_TIMEOUT_SEC ─► log flush ─► exit
 *
 * Only this module touches the process: it reads `process.env`, writes to
 * stderr before a logger exists, installs the signal handlers and exits.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestListener, Server } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type Config, ConfigError, loadConfig } from '../shared/config.js';
import { redactConfig } from '../shared/redaction.js';
import { deadlineIn } from '../shared/deadline.js';
import { createLogger } from '../shared/logger.js';
import { createHttpServer } from './http-server.js';

/** sysexits.h EX_CONFIG: the exit code SPEC section 2 gives a bad configuration. */
export const EXIT_CONFIG = 78;
/** The last log lines get this long to reach stdout and LOG_DIR before exit (a stuck log disk must not hold the exit up). */
const LOG_FLUSH_DEADLINE_MS = 2_000;

/** What the runner gives a program to start with. */
export interface ProgramContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly version: string;
  /** When the process started, in epoch ms. */
  readonly startedAt: number;
  /** Ends start-up with one line on stderr and exit 1. */
  readonly fail: (message: string) => never;
  /** A fault the program cannot go on from: logged, flushed, exit 1 (systemd or PM2 restarts it). */
  readonly fatal: (message: string) => void;
}

/** A started program: its app, and how it stops. */
export interface StartedProgram {
  readonly app: RequestListener;
  /** Fields for the started line besides version, port and config. */
  readonly startedFields?: Record<string, unknown>;
  /** Whether a group commit is under way on the writer thread (see exitProcess). */
  readonly writer: WriterActivity;
  /**
   * Stops within the deadline (`left()` says how long is left): stop taking
   * work, finish what is in hand, close `server`. Resolves to the exit code:
   * 0 when everything was written, else 1.
   */
  readonly stop: (signal: NodeJS.Signals, server: Server, left: () => number) => Promise<0 | 1>;
}

export interface Program {
  /** The name on stderr lines (`sensor-ingest`, `sensor-ingest-collect`). */
  readonly name: string;
  /** The started line's message. */
  readonly startedMessage: string;
  /** Config defaults where this program differs from the ingest server's. */
  readonly defaults?: Readonly<Record<string, string>>;
  /** Problems with a valid config that this program cannot run with (exit 78). */
  readonly checkConfig?: (config: Config) => string[];
  readonly start: (context: ProgramContext) => Promise<StartedProgram>;
}

/** Lines on stderr, for before the logger exists: each starts with the program's name. */
interface Stderr {
  readonly say: (line: string) => void;
  /** Says `line` and exits with `code` (1 unless told). */
  readonly fail: (line: string, code?: number) => never;
}

/** Runs `program` as this process, until a signal stops it. */
export function runProgram(program: Program): void {
  const say = (line: string): void => {
    process.stderr.write(`${program.name}: ${line}\n`);
  };
  const stderr: Stderr = {
    say,
    fail: (line, code = 1) => {
      say(line);
      process.exit(code);
    },
  };
  run(program, stderr).catch((error: unknown) => {
    const { message, code } = error as { message?: string; code?: string };
    stderr.fail(`start-up failed: ${(message ?? String(error)).split('\n')[0]}${code === undefined || message?.includes(code) ? '' : ` (${code})`}`);
  });
}

async function run(program: Program, stderr: Stderr): Promise<void> {
  const startedAt = Date.now();
  const config = readConfig(program, stderr);
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  prepareDirectories(config, stderr);
  const { logger, flush: flushLog } = await createLogger(config);

  const started = await program.start({
    config,
    logger,
    version,
    startedAt,
    fail: (line) => stderr.fail(line),
    fatal: (message) => {
      logger.fatal(message);
      void flushLog(LOG_FLUSH_DEADLINE_MS).then(() => process.exit(1));
    },
  });
  // Slow senders: a request must arrive whole within 30 s, its headers within 10 s, and
  // the 408 come on time (Node's defaults let a slow-loris hold sockets for long on a Pi).
  const server = createHttpServer(started.app);
  await listen(server, config, stderr);
  // Under PM2 (wait_ready), this tells it the server is serving.
  process.send?.('ready');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  logger.info({ version, port, config: redactConfig(config), ...started.startedFields }, program.startedMessage);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    // One deadline for every step (SPEC section 7).
    const left = deadlineIn(config.shutdownTimeoutSec * 1000);
    void started.stop(signal, server, left).then(async (code) => {
      await flushLog(LOG_FLUSH_DEADLINE_MS);
      exitProcess(code, started.writer);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** The config, or every problem with it on stderr and exit 78 (SPEC section 2). */
function readConfig(program: Program, stderr: Stderr): Config {
  let problems: readonly string[];
  try {
    const config = loadConfig(process.env, { hostname: hostname(), ...(program.defaults === undefined ? {} : { defaults: program.defaults }) });
    problems = program.checkConfig?.(config) ?? [];
    if (problems.length === 0) return config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems = error.problems;
  }
  for (const problem of problems) stderr.say(problem);
  process.exit(EXIT_CONFIG);
}

/** Creates DATA_DIR and LOG_DIR and proves DATA_DIR takes a file, or exits 1 with one line. */
function prepareDirectories(config: Config, { fail }: Stderr): void {
  try {
    mkdirSync(config.dataDir, { recursive: true });
    const probe = join(config.dataDir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (error) {
    fail(`DATA_DIR '${config.dataDir}' cannot be used: ${(error as Error).message}`);
  }
  try {
    mkdirSync(config.logDir, { recursive: true });
  } catch (error) {
    fail(`LOG_DIR '${config.logDir}' cannot be used: ${(error as Error).message}`);
  }
}

function listen(server: Server, config: Config, { fail }: Stderr): Promise<void> {
  return new Promise((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EADDRINUSE' ? 'the port is already in use' : error.message;
      fail(`cannot listen on ${config.host}:${config.port}: ${why} (${error.code ?? 'error'})`);
    });
    server.listen(config.port, config.host, () => resolve());
  });
}

/** What the exit needs to know of the writer. */
export interface WriterActivity {
  /** A group commit is under way on the writer thread. */
  readonly writing: boolean;
}

/**
 * The last step of a shutdown. `process.exit` waits for every thread to
 * stop, and a thread blocked in the kernel (a write to a dead USB or NFS
 * disk, a FIFO nobody reads) never comes back, so the process would outlive
 * SHUTDOWN_TIMEOUT_SEC for ever (SPEC section 11). While the writer thread is
 * still inside a write, the process ends itself with SIGKILL instead: the
 * rows it held were logged as unwritten, and the kernel finishes or abandons
 * that write without us.
 */
export function exitProcess(code: number, writer: WriterActivity): never {
  if (code !== 0 && writer.writing) process.kill(process.pid, 'SIGKILL');
  process.exit(code);
}
