/**
 * Start-up at the process boundary (SPEC sections 2, 7 and 9): a bad config
 * exits 78 with one stderr line per bad variable; an unusable DATA_DIR or a
 * port in use exits 1 with one clear line; the start-up log line keeps
 * secrets out.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, postJson } from '../support/http-client.js';
import { useServers, logLine, serverEnv } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const dir = useTempDir();
let blocker: Server | undefined;
afterEach(async () => {
  if (blocker !== undefined) await new Promise((resolve) => blocker?.close(resolve));
  blocker = undefined;
});
const servers = useServers();

/** Runs the built server to its end; returns the exit and stdout and stderr apart. */
async function runToExit(env: Record<string, string>): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const s = servers.run(env);
  let stdout = '';
  let stderr = '';
  s.child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  s.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = await s.exited;
  // 'exit' can come before the pipes are read to the end.
  if (s.child.stdout !== null && !s.child.stdout.readableEnded) await once(s.child.stdout, 'end');
  if (s.child.stderr !== null && !s.child.stderr.readableEnded) await once(s.child.stderr, 'end');
  return { ...exit, stdout, stderr };
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

describe('start-up failures', () => {
  it('a bad config exits 78 with one stderr line per bad variable: name, value, accepted form', async () => {
    const dataDir = join(dir.path, 'data');
    const result = await runToExit({
      PORT: '70000',
      MAX_BATCH_ROWS: '0',
      DATA_DIR: dataDir,
      LOG_DIR: join(dir.path, 'logs'),
    });

    expect(result.code).toBe(78);
    expect(lines(result.stderr)).toEqual([
      "sensor-ingest: PORT must be a whole number from 0 to 65535; got '70000'",
      "sensor-ingest: MAX_BATCH_ROWS must be a whole number from 1 to 100000; got '0'",
    ]);
    expect(result.stdout).toBe('');
    expect(existsSync(dataDir)).toBe(false); // it stopped before touching the disk
  });

  it('a bad secret is named on stderr but its value is not shown', async () => {
    const result = await runToExit(
      serverEnv(dir.path, {
        PORT: '0',
        INGEST_TOKEN: 'hunter2 with spaces',
        ACK_MODE: 'sometimes',
      }),
    );

    expect(result.code).toBe(78);
    expect(lines(result.stderr)).toEqual([
      "sensor-ingest: ACK_MODE must be one of queued, durable; got 'sometimes'",
      'sensor-ingest: INGEST_TOKEN must be printable ASCII with no spaces; the value is not shown because it is a secret',
    ]);
    expect(result.stderr + result.stdout).not.toContain('hunter2');
  });

  it('a DATA_DIR under a regular file exits 1 with one line naming it', async () => {
    // Tests run as root, and chmod does not stop root: a path through a file does.
    const file = join(dir.path, 'not-a-dir');
    writeFileSync(file, 'x');
    const dataDir = join(file, 'data');
    const result = await runToExit({ PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_DIR: join(dir.path, 'logs') });

    expect(result.code).toBe(1);
    const [line, ...more] = lines(result.stderr);
    expect(more).toEqual([]);
    expect(line).toContain(`DATA_DIR '${dataDir}' cannot be used`);
    expect(line).toMatch(/ENOTDIR/);
    expect(result.stdout).not.toContain('sensor-ingest started');
  });

  it('a port in use exits 1 with one line saying so', async () => {
    const taken = createServer();
    blocker = taken;
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;

    const result = await runToExit(serverEnv(dir.path, { PORT: String(port), HOST: '127.0.0.1' }));

    expect(result.code).toBe(1);
    const [line, ...more] = lines(result.stderr);
    expect(more).toEqual([]);
    expect(line).toContain(`127.0.0.1:${port}`);
    expect(line).toMatch(/already in use/);
    expect(line).toMatch(/EADDRINUSE/);
    expect(result.stdout).not.toContain('sensor-ingest started');
  });
});

describe('start-up log', () => {
  it("'sensor-ingest started' carries the effective config with the tokens redacted; no log line shows them", async () => {
    const ingestToken = 'ingest-s3cret-7f3a9c';
    const readToken = 'read-s3cret-1b2d4e';
    const s = await servers.start(serverEnv(dir.path, {
      INGEST_TOKEN: ingestToken,
      READ_TOKEN: readToken,
      MAX_BATCH_ROWS: '250',
    }));

    // Logs go through pino's transport thread: the line may trail the first /healthz answer.
    const started = await logLine(s, 'sensor-ingest started');
    expect(started).toMatchObject({
      level: 30,
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      port: s.port,
      config: { port: s.port, maxBatchRows: 250, ingestToken: '[redacted]', readToken: '[redacted]' },
    });
    expect(JSON.stringify(started)).not.toContain(ingestToken);
    expect(JSON.stringify(started)).not.toContain(readToken);

    // The token still works, and requests with right and wrong tokens log nothing secret.
    expect((await postJson(`${s.url}/data`, { id: 1 }, { authorization: `Bearer ${ingestToken}` })).status).toBe(202);
    expect((await postJson(`${s.url}/data`, { id: 2 }, { authorization: 'Bearer wrong-token' })).status).toBe(401);
    const postLines = (text: string) => text.split('\n').filter((line) => line.includes('"path":"/data"')).length;
    await waitFor(() => postLines(s.output()) >= 2, 'two POST log lines on stdout');
    expect(s.output()).not.toContain(ingestToken);
    expect(s.output()).not.toContain(readToken);

    // The same holds for the rolling log files in LOG_DIR.
    const logDir = join(dir.path, 'logs');
    const logFiles = () => readdirSync(logDir).map((name) => readFileSync(join(logDir, name), 'utf8'));
    await waitFor(() => postLines(logFiles().join('\n')) >= 2, 'two POST log lines in LOG_DIR');
    const files = logFiles().join('\n');
    expect(files).toContain('sensor-ingest started');
    expect(files).not.toContain(ingestToken);
    expect(files).not.toContain(readToken);
  });
});
