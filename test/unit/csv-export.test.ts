/**
 * The CSV download's work stays linear in the bytes whatever the row size
 * (SPEC section 11, CPU): the export's scanner and parser are counted through
 * its seam, and together they may look at each byte served only a few times.
 * Parsing the growing text again at each 64 KiB chunk, as the export once did,
 * looked at a 1 MB row about ten times. No wall clock: the count is the test.
 */
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CsvReading, exportCsv } from '../../src/storage/csv-export.js';
import { parseRecord, scanRowEnds } from '../../src/storage/csv.js';
import { readHeader, readTail } from '../../src/storage/csv.js';
import { useTempDir } from '../support/temp-dir.js';

const MB = 1024 * 1024;

/** The real scanner and parser, counting the bytes (characters) each call looks at. */
function countingReading(): CsvReading & { examined: () => number } {
  let examined = 0;
  return {
    scanRowEnds: (scan, chunk, length, position) => {
      examined += length;
      scanRowEnds(scan, chunk, length, position);
    },
    parseRecord: (text, start = 0) => {
      const record = parseRecord(text, start);
      examined += (record?.end ?? text.length) - start;
      return record;
    },
    examined: () => examined,
  };
}

async function collect(chunks: AsyncIterable<string>): Promise<string> {
  let text = '';
  for await (const chunk of chunks) text += chunk;
  return text;
}

const dir = useTempDir();

/** A file of 1 MB rows of several kinds (plain, quoted with newlines and doubled quotes, multi-byte), small rows between. */
function writeWideRows(path: string): string {
  const at = (i: number) => `2026-11-23T10:00:${String(i).padStart(2, '0')}.000Z`;
  const cells = [
    'x'.repeat(MB),
    `"${'a,"" b\n'.repeat(MB / 8)}"`,
    'ж€'.repeat(MB / 5),
    `"${'"'.repeat(MB)}"`,
  ];
  let text = 'received_at,id,big\n';
  for (let i = 0; i < 8; i++) text += `${at(i)},${i},${cells[i % cells.length] as string}\n${at(i)},small${i},s\n`;
  writeFileSync(path, text);
  return text;
}

describe('exportCsv', () => {
  it('looks at each byte at most three times for rows of 1 MB, and serves the file byte for byte', async () => {
    const path = join(dir.path, 'data.csv');
    const file = writeWideRows(path);
    const reading = countingReading();
    const served = await collect(exportCsv([path], ['received_at', 'id', 'big'], {}, reading));
    expect(served).toBe(file);
    // At least once each (the seam is in use), at most three times.
    expect(reading.examined()).toBeGreaterThanOrEqual(served.length);
    expect(reading.examined() / served.length).toBeLessThanOrEqual(3);
  });

  it('stays linear when the cells are moved under a union header and a day range filters', async () => {
    const path = join(dir.path, 'data.csv');
    const file = writeWideRows(path);
    const reading = countingReading();
    const served = await collect(exportCsv([path, join(dir.path, 'gone.csv')], ['received_at', 'extra', 'big', 'id'], { from: '2026-11-23', to: '2026-11-23' }, reading));
    const lines = served.split('\n');
    expect(lines[0]).toBe('received_at,extra,big,id');
    expect(lines[1]).toBe(`2026-11-23T10:00:00.000Z,,${'x'.repeat(MB)},0`);
    expect(served.length).toBeGreaterThan(file.length - 100);
    expect(reading.examined()).toBeGreaterThanOrEqual(served.length);
    expect(reading.examined() / served.length).toBeLessThanOrEqual(3);
  });

  it('leaves out a last row not yet ended, even a 1 MB one inside an open quote', async () => {
    const path = join(dir.path, 'data.csv');
    writeFileSync(path, `received_at,big\n2026-11-23T10:00:00.000Z,a\n2026-11-23T10:00:01.000Z,"${'b\n,'.repeat(MB / 3)}`);
    const reading = countingReading();
    const served = await collect(exportCsv([path], ['received_at', 'big'], {}, reading));
    expect(served).toBe('received_at,big\n2026-11-23T10:00:00.000Z,a\n');
    expect(reading.examined()).toBeLessThanOrEqual(2 * MB);
  });
});

describe('reading a wide header', () => {
  it('reads a header of 300 KB and more whole, in reads that grow, and the rows after it', async () => {
    const path = join(dir.path, 'data.csv');
    const columns = ['received_at', ...Array.from({ length: 1000 }, (_, i) => `${'€'.repeat(110)}${i}`)];
    const header = `${columns.join(',')}\n`;
    expect(Buffer.byteLength(header)).toBeGreaterThan(300 * 1024);
    const row = `2026-11-23T10:00:00.000Z,${columns.slice(1).map((_, i) => i).join(',')}\n`;
    writeFileSync(path, header + row);
    expect(await readHeader(path)).toEqual(columns);
    const tail = await readTail(path);
    expect(tail?.header).toEqual(columns);
    expect(tail?.rows).toHaveLength(1);
    // Reads double from 16 KiB: never much more than twice what was needed.
    expect(tail?.bytesRead).toBeLessThanOrEqual(readFileSync(path).length * 2 + 16 * 1024);
  });

  it('refuses loudly a file with no line end in its first 16 MiB (MAX_HEADER_BYTES), without reading it whole; gives null for a header not yet ended', async () => {
    const path = join(dir.path, 'data.csv');
    writeFileSync(path, 'received_at,');
    expect(await readHeader(path)).toBeNull(); // a header being written
    truncateSync(path, 17 * MB); // the rest a hole of zero bytes: no line end anywhere
    await expect(readHeader(path)).rejects.toThrow(`${path} has no header line in its first ${16 * MB} bytes: not a CSV file this server wrote`);
  });
});
