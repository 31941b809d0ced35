/**
 * Crash safety (SPEC section 5), at the process boundary: SIGKILL a durable
 * server under load, then check that every 201 is on disk, and that a
 * restart repairs a cut last row (and only a cut one) before it serves.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileText, listFiles, readCsv } from '../support/csv-files.js';
import { postJson } from '../support/http-client.js';
import { type ServerProcess, useServers, serverEnv, logLine } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const IN_FLIGHT = 100;
/** Acknowledged rows to see before the kill: enough that the kill lands mid-load. */
const ACKS_BEFORE_KILL = 1500;
const PARTIAL = /^data\.csv\.partial-\d{8}T\d{6}Z$/;

const dir = useTempDir();
const servers = useServers();

/**
 * Starts the server and waits for its start-up log line: logs go through
 * pino's transport thread, so they may trail the first /healthz answer, and
 * any repair WARN is logged before that line.
 */
async function start(env: Record<string, string>): Promise<ServerProcess> {
  const s = await servers.start(env);
  await logLine(s, 'sensor-ingest started');
  return s;
}

function repairLines(s: ServerProcess): Array<Record<string, unknown>> {
  return s.logLines().filter((line) => line.msg === 'repaired cut row');
}

/**
 * POSTs unique ids, IN_FLIGHT at a time, until the process is gone; kills it
 * with SIGKILL once `ACKS_BEFORE_KILL` have been answered 201. Returns the
 * ids answered 201 and how many requests were still open at the kill.
 */
async function loadAndKill(s: ServerProcess): Promise<{ acked: string[]; openAtKill: number }> {
  const acked: string[] = [];
  let next = 0;
  let open = 0;
  let openAtKill = -1;
  let dead = false;
  void s.exited.then(() => {
    dead = true;
  });
  const client = async (): Promise<void> => {
    while (!dead) {
      const id = `r${next++}`;
      open++;
      try {
        const response = await fetch(`${s.url}/data`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, bme: { t: 21.5, note: 'x,"y"' } }),
        });
        await response.arrayBuffer();
        if (response.status === 201) acked.push(id);
        else if (response.status !== 503) throw new Error(`unexpected status ${response.status} for ${id}`);
      } catch (error) {
        if (openAtKill < 0) throw error; // before the kill, every request must get an answer
      } finally {
        open--;
      }
      if (acked.length >= ACKS_BEFORE_KILL && openAtKill < 0) {
        openAtKill = open;
        s.child.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, client));
  await s.exited;
  return { acked, openAtKill };
}

describe('kill -9 in ACK_MODE=durable, then restart', () => {
  it('keeps every 201 row; a restart moves a cut tail to data.csv.partial-<time>, keeps the rows and serves', async () => {
    const first = await start(serverEnv(dir.path, { ACK_MODE: 'durable' }));
    const { acked, openAtKill } = await loadAndKill(first);
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(acked.length).toBeGreaterThanOrEqual(ACKS_BEFORE_KILL);
    expect(openAtKill).toBeGreaterThan(0); // the kill landed with requests in flight

    const file = join(dir.path, 'data', 'data.csv');
    const afterKill = readFileSync(file, 'utf8');
    // Every acknowledged id is on disk right after the kill, before any repair.
    const onDisk = new Set([...afterKill.matchAll(/^[^,\n]+,(r\d+),/gm)].map((match) => match[1]));
    expect(acked.filter((id) => !onDisk.has(id))).toEqual([]);

    // A power cut mid-row: append a stump. (Should the kill itself have torn the
    // last row, its bytes belong to the stump too.)
    const cut = '2026-01-01T00:00:00.000Z,"cut';
    appendFileSync(file, cut);
    const stump = afterKill.slice(afterKill.lastIndexOf('\n') + 1) + cut;

    const second = await start(serverEnv(dir.path));
    const [warn, ...more] = repairLines(second);
    expect(more).toEqual([]);
    expect(warn).toMatchObject({ level: 40, file: 'data.csv', bytes: Buffer.byteLength(stump) });
    expect(warn?.partial).toMatch(PARTIAL);
    // Repair runs before the port opens: its line comes before the start-up line (one logger, in order).
    const messages = second.logLines().map((line) => line.msg);
    expect(messages.indexOf('repaired cut row')).toBeLessThan(messages.indexOf('sensor-ingest started'));

    const partials = listFiles(join(dir.path, 'data')).filter((name) => name.startsWith('data.csv.partial-'));
    expect(partials).toEqual([warn?.partial]);
    expect(readFileSync(join(dir.path, 'data', partials[0] as string), 'utf8')).toBe(stump);

    const repaired = readFileSync(file, 'utf8');
    expect(repaired).toBe(afterKill.slice(0, afterKill.length - (stump.length - cut.length)));
    const records = readCsv(file); // strict column count
    expect(records[0]).toEqual(['received_at', 'id', 'bme.t', 'bme.note']);
    expect(records.filter((record) => record[0] === 'received_at')).toHaveLength(1);
    const ids = records.slice(1).map((record) => record[1]);
    expect(new Set(ids).size).toBe(ids.length); // no row twice
    const idSet = new Set(ids);
    expect(acked.filter((id) => !idSet.has(id))).toEqual([]);

    // It serves, and the new row lands on a whole line, not glued to the stump.
    const answer = await postJson(`${second.url}/data`, { id: 'after-restart', bme: { t: 1, note: 'ok' } });
    expect(answer).toMatchObject({ status: 202, body: { status: 'queued', rows: 1 } });
    const landed = await waitFor(() => {
      const rows = readCsv(file);
      return rows.find((row) => row[1] === 'after-restart');
    }, 'the new row in data.csv');
    expect(landed.slice(1)).toEqual(['after-restart', '1', 'ok']);
    expect(readCsv(file)).toHaveLength(records.length + 1);
  });

  it('a quoted field holding a newline at the end of the file is not a cut', async () => {
    const dataDir = join(dir.path, 'data');
    mkdirSync(dataDir);
    const file = join(dataDir, 'data.csv');
    const whole =
      'received_at,id,note\n' +
      '2026-01-01T00:00:00.000Z,q1,plain\n' +
      '2026-01-01T00:00:01.000Z,q2,"a\nb"\n' +
      '2026-01-01T00:00:02.000Z,q3,"say ""hi""\nthen, ""bye""\n"\n';
    writeFileSync(file, whole);

    const s = await start(serverEnv(dir.path));
    expect(repairLines(s)).toEqual([]);
    expect(listFiles(dataDir)).toEqual(['data.csv']);
    expect(fileText(file)).toBe(whole);

    // And the next row follows the quoted newline's row, on its own line.
    expect((await postJson(`${s.url}/data`, { id: 'q4', note: 'c\nd' })).status).toBe(202);
    const rows = await waitFor(() => {
      const records = readCsv(file);
      return records.length === 5 ? records : undefined;
    }, 'the fifth record');
    expect(rows.map((row) => row.slice(1))).toEqual([
      ['id', 'note'],
      ['q1', 'plain'],
      ['q2', 'a\nb'],
      ['q3', 'say "hi"\nthen, "bye"\n'],
      ['q4', 'c\nd'],
    ]);
    expect(fileText(file)?.startsWith(whole)).toBe(true);
  });

  it('a row cut inside a quoted field, just after a newline in it, is a cut', async () => {
    const dataDir = join(dir.path, 'data');
    mkdirSync(dataDir);
    const file = join(dataDir, 'data.csv');
    const whole = 'received_at,id,note\n2026-01-01T00:00:00.000Z,q1,"a\nb"\n';
    const cut = '2026-01-01T00:00:01.000Z,q2,"c\n';
    writeFileSync(file, whole + cut);

    const s = await start(serverEnv(dir.path));
    const [warn, ...more] = repairLines(s);
    expect(more).toEqual([]);
    expect(warn).toMatchObject({ level: 40, file: 'data.csv', bytes: Buffer.byteLength(cut) });
    expect(fileText(file)).toBe(whole);
    expect(fileText(join(dataDir, warn?.partial as string))).toBe(cut);
    expect(readCsv(file)).toHaveLength(2);
  });

  it.each([
    ['mid-cell', '2026-01-01T00:00:01.000Z,dead,"half'],
    ['just after a newline inside a quoted cell', '2026-01-01T00:00:01.000Z,dead,"c\n'],
  ])('a stump another process left while this one runs (%s) is cut before the next append', async (_what, stump) => {
    const s = await start(serverEnv(dir.path));
    const file = join(dir.path, 'data', 'data.csv');
    expect((await postJson(`${s.url}/data`, { id: 'before', note: 'x' })).status).toBe(202);
    await waitFor(() => readCsv(file).length === 2, 'the first row');
    const whole = readFileSync(file, 'utf8');

    // A second server on this DATA_DIR, killed mid-write, left this behind.
    appendFileSync(file, stump);
    expect((await postJson(`${s.url}/data`, { id: 'after', note: 'y' })).status).toBe(202);
    await waitFor(() => fileText(file)?.includes(',after,'), 'the second row on disk');

    // Glued onto the stump, the row would sit inside the stump's open quote.
    expect(readCsv(file).map((row) => row.slice(1))).toEqual([
      ['id', 'note'],
      ['before', 'x'],
      ['after', 'y'],
    ]);
    expect(fileText(file)?.startsWith(whole)).toBe(true);
    const warn = await waitFor(() => repairLines(s)[0], "the 'repaired cut row' WARN", 5000);
    expect(warn).toMatchObject({ level: 40, file: 'data.csv', bytes: Buffer.byteLength(stump) });
    expect(fileText(join(dir.path, 'data', warn.partial as string))).toBe(stump);
  });
});
