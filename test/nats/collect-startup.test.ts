/** The collector's start-up checks, on the built entry (`npm run collect` runs it). */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COLLECT, runServer, tempDir } from '../helpers.js';

let dir: ReturnType<typeof tempDir>;
afterEach(() => dir?.cleanup());

describe('npm run collect', () => {
  it('without NATS_URL exits 78 with one line that names it', async () => {
    dir = tempDir();
    const collector = runServer({ DATA_DIR: join(dir.path, 'data'), LOG_DIR: join(dir.path, 'logs'), PORT: '0' }, COLLECT);
    expect((await collector.exited).code).toBe(78);
    const lines = collector.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sensor-ingest-collect: NATS_URL=.*nats:\/\//);
  });

  it('with a bad variable exits 78 naming it, like the ingest server', async () => {
    dir = tempDir();
    const collector = runServer({ DATA_DIR: join(dir.path, 'data'), NATS_URL: 'http://x', SITE_ID: 'Bad Site' }, COLLECT);
    expect((await collector.exited).code).toBe(78);
    expect(collector.output()).toContain('NATS_URL');
    expect(collector.output()).toContain('SITE_ID');
  });
});
