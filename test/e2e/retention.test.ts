/**
 * Retention in the built server (SPEC section 12): at start-up, closed files
 * past RETENTION_DAYS, then the oldest while the stream files take more than
 * RETENTION_MAX_BYTES, are removed and logged; the current file stays.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLine, serverEnv, useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const dir = useTempDir();
const servers = useServers();
const DAY = 86_400_000;

/** A CSV file of `rows` rows, the newest received `daysAgo` days ago. */
function seed(dataDir: string, name: string, daysAgo: number, rows = 3): void {
  const lines = ['received_at,t'];
  for (let i = rows - 1; i >= 0; i--) lines.push(`${new Date(Date.now() - daysAgo * DAY - i * 1000).toISOString()},${i}`);
  writeFileSync(join(dataDir, name), `${lines.join('\n')}\n`);
}

describe('retention at start-up', () => {
  it('removes closed files by age, then the oldest by size, never the current file, and counts them', async () => {
    const env = serverEnv(dir.path, { STREAMS: 'data', RETENTION_DAYS: '30', RETENTION_MAX_BYTES: '300' });
    mkdirSync(env.DATA_DIR, { recursive: true });
    seed(env.DATA_DIR, 'data.20250101T000000Z.csv', 400); // past RETENTION_DAYS
    seed(env.DATA_DIR, 'data.20261101T000000Z.csv', 20, 4); // the oldest left: goes for size
    seed(env.DATA_DIR, 'data.20261120T000000Z.csv', 10, 4);
    seed(env.DATA_DIR, 'data.csv', 100, 4); // current: never removed, however old its rows
    const server = await servers.start(env);

    await waitFor(() => server.logLines().filter((line) => line.msg === 'retention removed file').length === 2, 'two removals');
    const removed = server.logLines().filter((line) => line.msg === 'retention removed file');
    expect(removed.map((line) => `${String(line.file)} ${String(line.reason)}`)).toEqual(['data.20250101T000000Z.csv age', 'data.20261101T000000Z.csv size']);
    expect(removed[0]).toMatchObject({ level: 30, bytes: expect.any(Number) });
    expect(readdirSync(env.DATA_DIR).filter((name) => name.endsWith('.csv')).sort()).toEqual(['data.20261120T000000Z.csv', 'data.csv']);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('retention_removed_files_total{reason="age"} 1');
    expect(metrics).toContain('retention_removed_files_total{reason="size"} 1');
    expect(metrics).toMatch(/\nretention_removed_bytes_total [1-9]\d*\n/);
    await logLine(server, 'sensor-ingest started');
  });
});
