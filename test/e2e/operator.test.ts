/**
 * The operator's WARN lines, read from the log file as an operator would,
 * from the built server running as a child process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { describe, expect, it } from 'vitest';
import { LOCK_OPTIONS } from '../../src/storage/lock.js';
import { postJson } from '../support/http-client.js';
import { jsonLines } from '../support/logs.js';
import { useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const dir = useTempDir();
const servers = useServers();

function logFileLines(): Array<Record<string, unknown>> {
  const path = join(dir.path, 'logs', 'current.log');
  if (!existsSync(path)) return [];
  return jsonLines(readFileSync(path, 'utf8'));
}
const logged = (msg: string, stream?: string) => logFileLines().filter((l) => l.msg === msg && (stream === undefined || l.stream === stream));

describe('WARN lines in LOG_DIR', () => {
  it('warns of a backlog once, not once per tick, and says when it clears; warns of a quiet stream and says when it resumes', async () => {
    const dataDir = join(dir.path, 'data');
    const server = await servers.start({
      DATA_DIR: dataDir,
      LOG_DIR: join(dir.path, 'logs'),
      WRITE_QUEUE_MAXSIZE: '10',
      QUEUE_WARN_THRESHOLD: '0.5',
      WRITE_RETRIES: '1',
      WRITE_BACKOFF_BASE_SEC: '0.05',
      WRITE_BACKOFF_MAX_SEC: '0.2',
      INACTIVITY_WARN_SEC: '2',
    });
    await waitFor(() => logged('sensor-ingest started').length === 1, 'the start-up line in the log file');

    // A quiet stream: one reading on data2, then nothing.
    expect((await postJson(`${server.url}/data2`, { t: 1 })).status).toBe(202);

    // A backlog: data.csv's lock held from outside, so rows pile up.
    const release = await lockfile.lock(join(dataDir, 'data.csv'), LOCK_OPTIONS);
    try {
      for (let i = 0; i < 6; i++) expect((await postJson(`${server.url}/data`, { seq: i })).status).toBe(202);
      await waitFor(() => logged('write queue backlog').length > 0, 'the backlog WARN');
      expect(logged('write queue backlog')[0]).toMatchObject({ level: 40, rows: 6, warnLevel: 5, max: 10 });
      // The inactivity WARN comes about 2 s later: several monitor ticks (every 0.5 s) have passed by then.
      await waitFor(() => logged('stream inactive', 'data2').length > 0, 'the inactivity WARN');
      expect(logged('stream inactive', 'data2')[0]).toMatchObject({ level: 40, stream: 'data2', idleSec: expect.any(Number) });
      expect(logged('write queue backlog')).toHaveLength(1);
      expect(logFileLines().some((l) => l.msg === 'write failed' && l.code === 'ELOCKED' && l.level === 50)).toBe(true);
    } finally {
      await release();
    }
    await waitFor(() => logged('write queue backlog cleared').length > 0, 'the backlog cleared INFO');
    expect(logged('write queue backlog cleared')[0]).toMatchObject({ level: 30 });

    expect((await postJson(`${server.url}/data2`, { t: 2 })).status).toBe(202);
    await waitFor(() => logged('stream resumed', 'data2').length > 0, 'the resumed INFO');
    expect(logged('stream resumed', 'data2')[0]).toMatchObject({ level: 30 });

    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    const rows = readFileSync(join(dataDir, 'data.csv'), 'utf8').trim().split('\n');
    expect(rows).toHaveLength(7);
  });
});
