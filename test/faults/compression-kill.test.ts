/**
 * SIGKILL during compression (SPEC section 12): closed files are compressed
 * at start-up, and the server is killed at random moments, round after round
 * on one DATA_DIR, in some rounds under durable load. After every kill:
 * each archive is listed once and reads back whole, from its plain form or
 * its `.gz`; a `.gz` under its own name is never half a file; no acknowledged
 * row is lost or doubled. Left alone at the end, every archive is compressed,
 * no temporary file is left, and the download holds every row once.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as nodeFs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { readFileState } from '../../src/storage/file-state.js';
import { listStreamFiles } from '../../src/storage/stream-files.js';
import { killAfterLogLine, killUnderLoad } from '../support/kill-rounds.js';
import { serverEnv, useServers } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const ROUNDS = 20;
const ARCHIVES_A_ROUND = 4;
const ROWS_AN_ARCHIVE = 3000;
const IN_FLIGHT = 8;

const dir = useTempDir();
const servers = useServers();

/** The ids of a CSV text's whole rows (ids and times hold no quotes or line breaks). */
function idsOf(text: string): string[] {
  const rows: string[][] = parse(text.slice(0, text.lastIndexOf('\n') + 1));
  return rows.slice(1).map((row) => row[1] as string);
}

describe('SIGKILL during compression', () => {
  it(`${ROUNDS} rounds: every archive whole in one form, never half a .gz, no acknowledged row lost or doubled`, async () => {
    const env = serverEnv(dir.path, { ACK_MODE: 'durable', STREAMS: 'data,data2', COMPRESS_CLOSED: 'gzip' });
    mkdirSync(env.DATA_DIR, { recursive: true });
    const seeded = new Map<string, string>();
    const acked = new Set<string>();
    let cutMidFile = 0;
    let bothForms = 0;

    for (let round = 0; round < ROUNDS; round++) {
      // New archives each round (older versions' archives: no state yet), so every round has compressions to cut.
      for (let i = 0; i < ARCHIVES_A_ROUND; i++) {
        const name = `data.2026${String(Math.floor(round / 28) + 1).padStart(2, '0')}${String((round % 28) + 1).padStart(2, '0')}T0${i}0000Z.csv`;
        const start = Date.UTC(2026, 0, 1) + (round * ARCHIVES_A_ROUND + i) * ROWS_AN_ARCHIVE * 1000;
        const rows = Array.from({ length: ROWS_AN_ARCHIVE }, (_, r) => `${new Date(start + r * 1000).toISOString()},a${round}-${i}-${r},${(r * 7919) % 1000}`);
        const text = `received_at,id,v\n${rows.join('\n')}\n`;
        writeFileSync(join(env.DATA_DIR, name), text);
        seeded.set(name, text);
      }

      if (round % 5 === 4) for (const id of await killUnderLoad(servers, env, round, 200, IN_FLIGHT)) acked.add(id);
      else await killAfterLogLine(servers, env, 'compressed file', 40);

      const names = new Set(readdirSync(env.DATA_DIR));
      const listed = (await listStreamFiles(env.DATA_DIR, 'data')).map((file) => file.name);
      let plainLeft = 0;
      for (const [name, text] of seeded) {
        const plain = names.has(name);
        const gz = names.has(`${name}.gz`);
        expect(plain || gz, `${name} in some form`).toBe(true);
        if (plain) {
          plainLeft++;
          expect(readFileSync(join(env.DATA_DIR, name), 'utf8'), `${name} whole`).toBe(text);
        }
        // Under its own name a .gz is whole: it decompresses (no "unexpected end of file") to the file, byte for byte.
        if (gz) expect(gunzipSync(readFileSync(join(env.DATA_DIR, `${name}.gz`))).toString(), `${name}.gz whole`).toBe(text);
        if (plain && gz) {
          bothForms++;
          // Killed between the rename and the removal: one id on both, and readers list the .gz alone.
          expect(readFileState(nodeFs, join(env.DATA_DIR, `${name}.gz`))?.id).toBe(readFileState(nodeFs, join(env.DATA_DIR, name))?.id);
        }
        expect(listed.filter((file) => file === name || file === `${name}.gz`), `${name} listed once`).toHaveLength(1);
      }
      const roundArchives = [...seeded.keys()].slice(-ARCHIVES_A_ROUND);
      const compressedThisRound = roundArchives.filter((name) => names.has(`${name}.gz`)).length;
      if (compressedThisRound > 0 && compressedThisRound < ARCHIVES_A_ROUND) cutMidFile++;

      const ids = ['data.csv', 'data2.csv'].flatMap((name) => (names.has(name) ? idsOf(readFileSync(join(env.DATA_DIR, name), 'utf8')) : []));
      const found = new Set(ids);
      const missing = [...acked].filter((id) => !found.has(id));
      const temporary = [...names].filter((name) => name.endsWith('.gz.tmp')).length;
      console.log(
        `compression kill round ${round + 1}: archives ${seeded.size}, still plain ${plainLeft}, compressed this round ${compressedThisRound} of ${ARCHIVES_A_ROUND}, temporary files ${temporary}; rows acknowledged ${acked.size}, found ${ids.length}, missing ${missing.length}, duplicates ${ids.length - found.size}`,
      );
      expect(missing).toEqual([]);
      expect(ids.length).toBe(found.size);
    }
    // The kills landed part-way through passes, not only before or after them.
    expect(cutMidFile).toBeGreaterThan(0);

    // Left alone: a file a kill left locked is skipped until its lock is stale (10 s, SPEC section 9); once the
    // locks are that old, one start-up pass compresses every archive that is left.
    const lockDirs = () => readdirSync(env.DATA_DIR).filter((name) => name.endsWith('.lock')).map((name) => join(env.DATA_DIR, name));
    await waitFor(() => lockDirs().every((path) => !existsSync(path) || Date.now() - statSync(path).mtimeMs > 11_000), 'the locks the kills left to go stale', 20_000);
    const final = await servers.start(env);
    await waitFor(() => [...seeded.keys()].every((name) => !existsSync(join(env.DATA_DIR, name))), 'every archive compressed', 60_000);
    await waitFor(() => readdirSync(env.DATA_DIR).every((name) => !name.endsWith('.gz.tmp')), 'no temporary file left', 10_000);
    const downloaded = idsOf(await (await fetch(`${final.url}/streams/data/csv`)).text());
    const unique = new Set(downloaded);
    expect(unique.size).toBe(downloaded.length);
    const seededIds = [...seeded.values()].flatMap(idsOf);
    expect(seededIds.filter((id) => !unique.has(id))).toEqual([]);
    console.log(`compression kill: left alone, all ${seeded.size} archives compressed; the download holds ${downloaded.length} rows (${seededIds.length} archived), none twice; both forms seen after ${bothForms} kills`);
    final.child.kill('SIGTERM');
    expect(await final.exited).toEqual({ code: 0, signal: null });
  }, 240_000);
});
