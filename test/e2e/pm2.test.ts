/**
 * PM2 (SPEC section 7): start the built server from ecosystem.config.cjs
 * under the project's own pm2, with PM2_HOME in a temp dir, reload it while
 * readings keep arriving, and count rows on disk. Fork mode's reload is a
 * graceful restart (SIGINT, drain, start again): requests in the gap may be
 * refused or get a 503, but every 2xx reading must be in the file exactly
 * once. Then `pm2 kill` must leave no process behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/shared/config.js';
import { readCsv } from '../support/csv-files.js';
import { freePort, pool, postJson, answers200 } from '../support/http-client.js';
import { jsonLines } from '../support/logs.js';
import { ROOT } from '../support/paths.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const PM2 = join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2');
const ECOSYSTEM = join(ROOT, 'ecosystem.config.cjs');
const APP = 'sensor-ingest';
/** Readings the loader has answered 2xx before the reload starts, and after it ends. */
const OK_BEFORE = 20;
const OK_AFTER = 20;
const IN_FLIGHT = 4;

interface Pm2Process {
  name: string;
  pid: number;
  pm2_env: { status: string; exec_mode: string; instances: number; kill_timeout: number; restart_time: number };
}

let dir: ReturnType<typeof tempDir> | undefined;
let env: NodeJS.ProcessEnv = {};
/** Every PID this file made PM2 start (app processes and the daemon), for the safety net. */
const started = new Set<number>();

/** Runs the project's pm2 with the test's PM2_HOME and settings; async, so the loader keeps running meanwhile. */
async function pm2(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [PM2, ...args], { cwd: ROOT, env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

async function jlist(): Promise<Pm2Process[]> {
  return JSON.parse(await pm2('jlist')) as Pm2Process[];
}

function daemonPid(): number | undefined {
  const file = join(env.PM2_HOME as string, 'pm2.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : undefined;
}

/** True once the PID is gone: `kill(pid, 0)` fails with ESRCH. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw error;
  }
}

/** `ps`-style state of a PID still present (Z: exited, not yet reaped by its parent or init), for messages. */
function state(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid}:${stat.slice(stat.lastIndexOf(')') + 2)[0]}`;
  } catch {
    return `${pid}:gone`;
  }
}

/** The JSON lines PM2 captured from the app's stdout (SPEC section 6: pino lines). */
function appLogLines(): Array<Record<string, unknown>> {
  const file = join(dir?.path as string, 'logs', 'pm2-out.log');
  if (!existsSync(file)) return [];
  return jsonLines(readFileSync(file, 'utf8'));
}

const logged = (pid: number, msg: string) => appLogLines().some((line) => line.pid === pid && line.msg === msg);

afterEach(async () => {
  if (dir !== undefined && daemonPid() !== undefined) {
    // Always stop PM2, even after a failure; `pm2 kill` on a home without a daemon would spawn one, hence the check.
    await pm2('kill').catch(() => undefined);
  }
  for (const pid of started) {
    // Safety net for a kill that failed: only PIDs this file started, and only if they still run.
    if (!gone(pid)) process.kill(pid, 'SIGKILL');
  }
  started.clear();
  dir?.cleanup();
  dir = undefined;
});

describe('ecosystem.config.cjs under PM2', () => {
  it('starts the app in fork mode, keeps every 2xx reading across `pm2 reload`, and `pm2 kill` leaves no process', async () => {
    dir = tempDir('sensor-ingest-pm2-');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dataDir = join(dir.path, 'data');
    const { SHUTDOWN_TIMEOUT_SEC: _unset, ...inherited } = process.env;
    env = {
      ...inherited,
      PM2_HOME: join(dir.path, 'pm2'),
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_DIR: join(dir.path, 'logs'),
    };

    await pm2('start', ECOSYSTEM);
    const daemon = daemonPid();
    expect(daemon).toBeGreaterThan(0);
    started.add(daemon as number);

    const [first] = await jlist();
    expect(first).toBeDefined();
    const oldPid = (first as Pm2Process).pid;
    started.add(oldPid);
    expect(first).toMatchObject({ name: APP, pm2_env: { exec_mode: 'fork_mode', instances: 1 } });
    expect(await jlist()).toHaveLength(1);
    // SPEC section 7: PM2 must not kill a drain part-way.
    expect((first as Pm2Process).pm2_env.kill_timeout).toBeGreaterThan(Number(DEFAULTS.SHUTDOWN_TIMEOUT_SEC) * 1000);

    await waitFor(() => answers200(`${url}/healthz`), '/healthz under PM2');

    const durable = await postJson(`${url}/data?ack=durable`, { id: 'first', phase: 'before' });
    expect(durable).toEqual(expect.objectContaining({ status: 201, body: { status: 'stored', rows: 1 } }));

    // The loader: unique ids, IN_FLIGHT at a time, until told to stop. Status 0 is a network error.
    const statuses = new Map<string, number>();
    let ok = 0;
    let stop = false;
    let next = 0;
    const loader = pool(IN_FLIGHT, IN_FLIGHT, async () => {
      while (!stop) {
        const id = `r${next++}`;
        let status: number;
        try {
          status = (await postJson(`${url}/data`, { id, phase: 'around' })).status;
        } catch {
          status = 0;
        }
        statuses.set(id, status);
        if (status >= 200 && status < 300) ok++;
      }
    });

    try {
      await waitFor(() => ok >= OK_BEFORE, `${OK_BEFORE} readings accepted before the reload`);
      await pm2('reload', APP);
      const okAtReload = ok;

      const reloaded = await waitFor(async () => {
        const [p] = await jlist();
        return p !== undefined && p.pid !== oldPid && p.pid > 0 && p.pm2_env.status === 'online' ? p : undefined;
      }, 'the reloaded process online');
      started.add(reloaded.pid);
      expect(reloaded.pm2_env.restart_time).toBe(1);
      expect(reloaded.pm2_env).toMatchObject({ exec_mode: 'fork_mode', instances: 1 });
      expect(await jlist()).toHaveLength(1);

      // Readings must keep landing on the new process after the reload.
      await waitFor(() => ok >= okAtReload + OK_AFTER, `${OK_AFTER} readings accepted after the reload`);
      await waitFor(() => logged(reloaded.pid, 'sensor-ingest started'), 'the new process to log its start');
    } finally {
      stop = true;
      await loader;
    }

    const [current] = await jlist();
    const newPid = (current as Pm2Process).pid;
    expect(newPid).not.toBe(oldPid);
    // The old process drained: SIGINT from PM2, then 'stopped' (not killed at kill_timeout).
    await waitFor(() => logged(oldPid, 'stopped'), 'the old process to log "stopped"');
    expect(appLogLines().find((line) => line.pid === oldPid && line.msg === 'shutting down')).toMatchObject({ signal: 'SIGINT' });
    expect(gone(oldPid)).toBe(true); // PM2 reaped it: nothing left of the old process

    await pm2('kill');
    const pids = [oldPid, newPid, daemon as number];
    // The daemon's parent is init, which may take a moment to reap it (seen: about 2 s).
    await waitFor(() => pids.every(gone), 'the app and daemon PIDs to be gone').catch((error: Error) => {
      throw new Error(`${error.message}; still present: ${pids.filter((pid) => !gone(pid)).map(state).join(', ')}`);
    });
    for (const pid of pids) {
      expect(() => process.kill(pid, 0), `pid ${pid}`).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    }
    expect(daemonPid()).toBeUndefined();
    // `pm2 kill` stops the app gracefully too.
    await waitFor(() => logged(newPid, 'stopped'), 'the new process to log "stopped"');

    // Rows on disk = the 2xx answers: header once, first; each 2xx id exactly once; no refused or 503 id.
    const records = readCsv(join(dataDir, 'data.csv'));
    expect(records[0]).toEqual(['received_at', 'id', 'phase']);
    expect(records.filter((record) => record[0] === 'received_at')).toHaveLength(1);
    const fileIds = records.slice(1).map((record) => record[1] as string);
    expect(new Set(fileIds).size).toBe(fileIds.length);

    const okIds = [...statuses].filter(([, status]) => status >= 200 && status < 300).map(([id]) => id);
    expect(okIds.length).toBeGreaterThanOrEqual(OK_BEFORE + OK_AFTER);
    expect(fileIds).toContain('first');
    const fileSet = new Set(fileIds);
    expect(okIds.filter((id) => !fileSet.has(id))).toEqual([]);
    // A 503 (or any other answer) enqueues nothing. A network error is ambiguous: a reset after
    // the request was read may still have been stored, once, so such ids may appear.
    const rejected = [...statuses].filter(([, status]) => status !== 0 && (status < 200 || status >= 300)).map(([id]) => id);
    expect(rejected.filter((id) => fileSet.has(id))).toEqual([]);
    expect(fileIds.filter((id) => id !== 'first' && !statuses.has(id))).toEqual([]);
    // In the gap a request is refused or reset (0) or, while the old process drains, answered 503.
    expect([...new Set(statuses.values())].filter((status) => status !== 0 && status !== 503 && (status < 200 || status >= 300))).toEqual([]);
  });

  it('sets kill_timeout above SHUTDOWN_TIMEOUT_SEC from the shell, as the server reads it', async () => {
    // Loading the config is what `pm2 start` does first; a child process gives it a clean environment.
    const killTimeout = async (value: string | undefined): Promise<number> => {
      const { SHUTDOWN_TIMEOUT_SEC: _unset, ...rest } = process.env;
      const { stdout } = await run(
        process.execPath,
        ['-e', `process.stdout.write(String(require(${JSON.stringify(ECOSYSTEM)}).apps[0].kill_timeout))`],
        { env: value === undefined ? rest : { ...rest, SHUTDOWN_TIMEOUT_SEC: value } },
      );
      return Number(stdout);
    };
    expect(await killTimeout(undefined)).toBeGreaterThan(Number(DEFAULTS.SHUTDOWN_TIMEOUT_SEC) * 1000);
    expect(await killTimeout('')).toBeGreaterThan(Number(DEFAULTS.SHUTDOWN_TIMEOUT_SEC) * 1000); // empty means unset
    expect(await killTimeout('120')).toBeGreaterThan(120_000);
    expect(await killTimeout('2.5')).toBeGreaterThan(2_500);
  });
});
