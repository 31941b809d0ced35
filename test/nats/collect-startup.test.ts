/** The collector's start-up checks, on the built entry (`npm run collect` runs it). */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { describe, expect, it } from 'vitest';
import { COLLECT } from '../support/paths.js';
import { useServers, logLine } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir();
const servers = useServers();

describe('npm run collect', () => {
  it('without NATS_URL exits 78 with one line that names it', async () => {
    const collector = servers.run({ DATA_DIR: join(dir.path, 'data'), LOG_DIR: join(dir.path, 'logs'), PORT: '0' }, COLLECT);
    expect((await collector.exited).code).toBe(78);
    const lines = collector.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sensor-ingest-collect: NATS_URL=.*nats:\/\//);
  });

  it('with a bad variable exits 78 naming it, like the ingest server', async () => {
    const collector = servers.run({ DATA_DIR: join(dir.path, 'data'), NATS_URL: 'http://x', SITE_ID: 'Bad Site' }, COLLECT);
    expect((await collector.exited).code).toBe(78);
    expect(collector.output()).toContain('NATS_URL');
    expect(collector.output()).toContain('SITE_ID');
  });
});

describe('npm run collect with no DATA_DIR or LOG_DIR', () => {
  it('uses ./central and ./logs/collect, not the ingest server\'s ./data and ./logs', async () => {
    const collector = servers.run({ PORT: '0', NATS_URL: 'nats://127.0.0.1:1' }, COLLECT, dir.path);
    try {
      expect(await logLine(collector, 'sensor-ingest collector started')).toMatchObject({
        config: { dataDir: join(dir.path, 'central'), logDir: join(dir.path, 'logs', 'collect') },
      });
      expect(existsSync(join(dir.path, 'central', '.sensor-ingest', 'collector.lock'))).toBe(true);
      expect(existsSync(join(dir.path, 'logs', 'collect', 'current.log'))).toBe(true);
      expect(existsSync(join(dir.path, 'data'))).toBe(false);
    } finally {
      collector.child.kill('SIGTERM');
      await collector.exited;
    }
  });
});

describe('npm run collect on a DATA_DIR without its journal', () => {
  it('refuses to start (exit 1) rather than cut every central file back to its header', async () => {
    const data = join(dir.path, 'data');
    mkdirSync(join(data, 'edge1', '.sensor-ingest', 'files'), { recursive: true });
    writeFileSync(join(data, 'edge1', 'data.csv'), 'received_at,t\n2026-11-23T10:15:00.000Z,1\n');
    writeFileSync(join(data, 'edge1', '.sensor-ingest', 'files', 'data.csv.state'), 'v1 0123456789abcdef 1795478663812 0000000000000039\n');
    const collector = servers.run({ DATA_DIR: data, LOG_DIR: join(dir.path, 'logs'), PORT: '0', NATS_URL: 'nats://127.0.0.1:1' }, COLLECT);
    expect((await collector.exited).code).toBe(1);
    expect(collector.output()).toMatch(/holds central files but no .*collected\.journal/);
    expect(readFileSync(join(data, 'edge1', 'data.csv'), 'utf8')).toBe('received_at,t\n2026-11-23T10:15:00.000Z,1\n');
  });
});

describe('npm run collect on a DATA_DIR another collector holds', () => {
  it('waits for the lock, then exits 1 naming the other collector, and touches nothing', async () => {
    const data = join(dir.path, 'data');
    mkdirSync(join(data, '.sensor-ingest'), { recursive: true });
    const journal = join(data, '.sensor-ingest', 'collected.journal');
    writeFileSync(journal, '');
    // The other collector: the same lock, kept fresh the way a live collector keeps it.
    const release = await lockfile.lock(join(data, '.sensor-ingest', 'collector'), { realpath: false, stale: 5_000, update: 1_000 });
    try {
      const collector = servers.run({ DATA_DIR: data, LOG_DIR: join(dir.path, 'logs'), PORT: '0', NATS_URL: 'nats://127.0.0.1:1' }, COLLECT);
      expect((await collector.exited).code).toBe(1);
      expect(collector.output()).toContain(`another collector runs on DATA_DIR '${data}'`);
      expect(readFileSync(journal, 'utf8')).toBe('');
    } finally {
      await release();
    }
  }, 30_000);
});
