/**
 * SPEC section 11, "A hung disk": a write blocked in the kernel (here a FIFO
 * in DATA_DIR that nobody reads, as a dead NFS or USB disk would block it)
 * makes the writer stalled and hung in /readyz, and SIGTERM still ends the
 * process within SHUTDOWN_TIMEOUT_SEC, with the ERROR naming the rows left.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, postJson, answers200 } from '../support/http-client.js';
import { MAIN } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const dir = useTempDir();
const servers = useServers();

const readyz = async (url: string) => {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks: { writer: Record<string, unknown> } } };
};

describe('a write blocked in the kernel', () => {
  it('is hung in /readyz after WRITE_TIMEOUT_SEC, and SIGTERM exits non-zero at SHUTDOWN_TIMEOUT_SEC all the same', async () => {
    const dataDir = join(dir.path, 'data');
    const server = await servers.start({ DATA_DIR: dataDir, LOG_DIR: join(dir.path, 'logs'), WRITE_TIMEOUT_SEC: '1', SHUTDOWN_TIMEOUT_SEC: '2' });
    const url = server.url;
    expect((await readyz(url)).status).toBe(200);
    // Made after start-up: repair would wait on it too. A FIFO opened read-write takes 64 KiB, then write() blocks.
    execFileSync('mkfifo', [join(dataDir, 'data.csv')]);
    expect((await postJson(`${url}/data`, { text: 'x'.repeat(200_000) })).status).toBe(202);
    expect((await postJson(`${url}/data`, { text: 'second' })).status).toBe(202);

    const hung = await waitFor(async () => {
      const ready = await readyz(url);
      return ready.status === 503 && ready.body.checks.writer.hung === true ? ready : null;
    }, 'the writer check to say hung');
    expect(hung.body.checks.writer).toMatchObject({ ok: false, hung: true, stalled: true, alive: true });
    await waitFor(() => server.logLines().find((line) => line.msg === 'writer stalled' && line.hung === true), 'the writer stalled WARN');
    // Everything else still answers.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    const stopMs = Date.now() - signalledAt;
    // process.exit would wait for the blocked thread for ever; the server ends itself instead.
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect(server.logLines().find((line) => line.msg === 'shutdown timed out with rows not written')).toMatchObject({
      level: 50,
      rows: 2,
      writer_blocked: true,
    });
    // 2 s, then the log flush (at most 2 s).
    expect(stopMs).toBeGreaterThanOrEqual(1_900);
    expect(stopMs).toBeLessThan(2_000 + 2_500);
  });
});

describe('stdout that nobody reads', () => {
  it('does not hold the exit up: SIGTERM ends the process within SHUTDOWN_TIMEOUT_SEC and the log flush deadline', async () => {
    const fifo = join(dir.path, 'stdout.fifo');
    execFileSync('mkfifo', [fifo]);
    // A reader that never reads: the pipe fills and stays full (as under a stuck log shipper).
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, 'w');
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: join(dir.path, 'data'), LOG_DIR: join(dir.path, 'logs'), SHUTDOWN_TIMEOUT_SEC: '2' },
      stdio: ['ignore', writer, 'ignore'],
    });
    closeSync(writer);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitFor(() => answers200(`${url}/healthz`), 'the server to answer');
      // About 300 bytes of log a request: 1,000 of them fill the 64 KiB pipe many times over.
      for (let i = 0; i < 1000; i++) await fetch(`${url}/data`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"t":1}' });
      const signalledAt = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      expect(code).toBe(0);
      // 2 s at most of shutdown, then at most 2 s for the log flush.
      expect(Date.now() - signalledAt).toBeLessThan(2_000 + 2_500);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      closeSync(reader);
    }
  });
});
