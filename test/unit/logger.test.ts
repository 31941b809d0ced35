import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOG_FILES_KEPT, createLogger } from '../../src/shared/logger.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const dir = useTempDir();

const logFiles = () => readdirSync(dir.path).filter((name) => /^sensor-ingest\.\d+\.log$/.test(name));

describe('createLogger', () => {
  it('rolls LOG_DIR/sensor-ingest.<n>.log at 1 MB, keeps 5 files, and links current.log to the newest', async () => {
    const { logger } = await createLogger({ logLevel: 'info', logDir: dir.path });
    const line = 'x'.repeat(1000);
    // About 7 MB of lines in 110 kB bursts. pino-roll rolls once its file stream drains, so each
    // burst ends with a marker line, and the next starts once the marker is on disk.
    const onDisk = (text: string) => logFiles().some((name) => readFileSync(join(dir.path, name), 'utf8').includes(text));
    for (let burst = 0; burst < 65; burst++) {
      for (let i = 0; i < 100; i++) logger.info({ burst, i, line }, 'filler');
      logger.info({ burst }, 'marker');
      await waitFor(() => onDisk(`"burst":${burst},"msg":"marker"`), `burst ${burst}`);
    }
    await waitFor(() => logFiles().length <= LOG_FILES_KEPT, 'old files to be removed');
    const files = logFiles();
    // pino-roll removes old files right after it opens a new one, and may count the new one or not yet.
    expect(files.length).toBeLessThanOrEqual(LOG_FILES_KEPT);
    expect(files.length).toBeGreaterThanOrEqual(LOG_FILES_KEPT - 1);
    const numbers = files.map((name) => Number(name.split('.')[1])).sort((a, b) => a - b);
    expect(numbers[0]).toBeGreaterThan(1); // the first files were removed
    for (const name of files) expect(statSync(join(dir.path, name)).size).toBeLessThan(1.5 * 1024 * 1024);
    expect(readlinkSync(join(dir.path, 'current.log'))).toBe(`sensor-ingest.${numbers.at(-1)}.log`);
  }, 60_000);

  it('redacts an authorization header on a logged object', async () => {
    const { logger } = await createLogger({ logLevel: 'info', logDir: dir.path });
    logger.info({ headers: { authorization: 'Bearer sekrit' } }, 'with headers');
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    const text = await waitFor(() => {
      const name = logFiles()[0];
      const content = name === undefined ? '' : readFileSync(join(dir.path, name), 'utf8');
      return content.includes('with headers') ? content : '';
    }, 'the log line');
    expect(text).toContain('"authorization":"[redacted]"');
    expect(text).not.toContain('sekrit');
  });
});
