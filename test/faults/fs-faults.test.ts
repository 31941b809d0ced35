/**
 * Failing writes without root: the writer's file-system seam injects EIO,
 * EAGAIN, ENOSPC and short writes while rows keep coming. Every accepted row
 * lands once, whole, in order, and no half row is ever left behind.
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../src/storage/reading.js';
import { createInlineRunner } from '../../src/writer/runners.js';
import { defaultWriteDeps } from '../../src/writer/worker/commit.js';
import type { WriterFs } from '../../src/storage/fs.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';
import { readCsv } from '../support/csv-files.js';
import { memoryLogger } from '../support/logs.js';
import { useTempDir } from '../support/temp-dir.js';
import { testConfig } from '../support/writer.js';

const dir = useTempDir();
let writer: Writer | undefined;
afterEach(async () => {
  await writer?.close();
  writer = undefined;
});

type Fault = 'EIO' | 'EAGAIN' | 'ENOSPC' | 'short' | 'short-then-EIO';

/** A file system whose CSV writes fail in the given ways, in turn, while `faults` has entries. */
function faultyFs(faults: Fault[]): WriterFs {
  const fail = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  return {
    ...nodeFs,
    writeSync: ((fd: number, buffer: Buffer, offset: number, length: number) => {
      const fault = faults.shift();
      if (fault === undefined) return nodeFs.writeSync(fd, buffer, offset, length);
      if (fault === 'short') return nodeFs.writeSync(fd, buffer, offset, Math.max(1, Math.floor(length / 2)));
      if (fault === 'short-then-EIO') {
        nodeFs.writeSync(fd, buffer, offset, Math.max(1, Math.floor(length / 3)));
        faults.unshift('EIO');
        throw fail('EIO');
      }
      throw fail(fault);
    }) as WriterFs['writeSync'],
  };
}

const reading = (seq: number): Reading => ({ columns: ['seq', 'text'], cells: [String(seq), `row ${seq}, "quoted"\nline two`] });

describe('injected file-system faults', () => {
  it.each<[string, Fault[]]>([
    ['EIO', ['EIO', 'EIO']],
    ['EAGAIN', ['EAGAIN']],
    ['ENOSPC', ['ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC']],
    ['a short write', ['short', 'short', 'short']],
    ['a short write, then EIO', ['short-then-EIO', 'short-then-EIO']],
    ['a mix, past WRITE_RETRIES', ['EIO', 'short-then-EIO', 'EAGAIN', 'ENOSPC', 'short', 'EIO', 'EIO']],
  ])('%s: every row lands once, whole, in order', async (what, faults) => {
    const { logger, lines } = memoryLogger();
    const errors: string[] = [];
    writer = createWriter({
      config: testConfig(dir.path, { WRITE_RETRIES: '2', WRITE_BACKOFF_BASE_SEC: '0.001', WRITE_BACKOFF_MAX_SEC: '0.01' }),
      runner: createInlineRunner({ ...defaultWriteDeps, fs: faultyFs(faults) }),
      logger,
      events: { writeFailed: (outcome) => errors.push(outcome.code) },
    });
    const acks: Array<Promise<void>> = [];
    for (let seq = 0; seq < 200; seq++) {
      acks.push(writer.enqueue('data', [reading(seq)], Date.now()));
      if (seq % 20 === 0) await new Promise((resolve) => setImmediate(resolve)); // let commits interleave with arrivals
    }
    await Promise.all(acks);
    const records = readCsv(join(dir.path, 'data.csv'));
    const seqs = records.slice(1).map((r) => Number(r[1]));
    const torn = records.slice(1).filter((r) => r[2] !== `row ${r[1]}, "quoted"\nline two`).length;
    console.log(`fs fault ${what}: rows acknowledged ${acks.length}, rows found ${seqs.length}, duplicates ${seqs.length - new Set(seqs).size}, torn rows ${torn}`);
    expect(records[0]).toEqual(['received_at', 'seq', 'text']);
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(torn).toBe(0);
    expect(faults).toEqual([]); // every injected fault was hit
    expect(lines.filter((l) => l.msg === 'write failed').map((l) => l.code)).toEqual(errors);
  });
});
