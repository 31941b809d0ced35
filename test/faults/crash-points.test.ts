/**
 * Crash points: SIGKILL the durable server at random moments under load,
 * round after round on one DATA_DIR. After every restart the file parses,
 * has one header, and holds every row ever acknowledged exactly once.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCsv } from '../support/csv-files.js';
import { useServers, serverEnv } from '../support/server-process.js';
import { useTempDir } from '../support/temp-dir.js';

const ROUNDS = 20;
/** The loop stops early (still asserting) if the rounds take longer than this. */
const TIME_BUDGET_MS = 150_000;
const IN_FLIGHT = 16;

const dir = useTempDir();
const servers = useServers();

/** Posts unique ids until the server dies; returns the ids answered 201. */
async function loadUntilDead(url: string, round: number, killAfterMs: number, kill: () => void): Promise<string[]> {
  const acked: string[] = [];
  let next = 0;
  let dead = false;
  const timer = setTimeout(() => {
    dead = true;
    kill();
  }, killAfterMs);
  const client = async () => {
    while (!dead) {
      const id = `r${round}-${next++}`;
      try {
        const res = await fetch(`${url}/data`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, text: 'a,b "c"\nd' }),
        });
        if (res.status === 201) acked.push(id);
        else await res.text();
      } catch {
        // The kill cut this request off: not acknowledged.
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, client));
  clearTimeout(timer);
  return acked;
}

describe('crash points', () => {
  it(`SIGKILL at random moments, ${ROUNDS} rounds: every acknowledged row present exactly once after each restart`, async () => {
    const env = serverEnv(dir.path, {
      ACK_MODE: 'durable',
      // Short pauses between commits, so a kill lands now inside a write, now between writes.
      COMMIT_INTERVAL_MS: '10',
    });
    const started = Date.now();
    const acked = new Set<string>();
    let rounds = 0;
    while (rounds < ROUNDS && Date.now() - started < TIME_BUDGET_MS) {
      const running = await servers.start(env);
      const killAfterMs = 50 + Math.floor(Math.random() * 400);
      for (const id of await loadUntilDead(running.url, rounds, killAfterMs, () => running.child.kill('SIGKILL'))) acked.add(id);
      await running.exited;
      rounds++;

      // The next start repairs whatever the kill cut; check the file as that restart leaves it.
      const server = await servers.start(env);
      const records = readCsv(join(env.DATA_DIR, 'data.csv')); // strict: throws on a torn or ragged row
      // A kill before the first commit leaves no file yet; otherwise one header, first.
      if (records.length > 0) expect(records[0]).toEqual(['received_at', 'id', 'text']);
      const ids = records.slice(1).map((r) => r[1] as string);
      const found = new Set(ids);
      const missing = [...acked].filter((id) => !found.has(id));
      const duplicates = ids.length - found.size;
      const torn = records.slice(1).filter((r) => r[2] !== 'a,b "c"\nd').length;
      console.log(`crash round ${rounds}: rows acknowledged ${acked.size}, rows found ${ids.length}, missing ${missing.length}, duplicates ${duplicates}, torn rows ${torn}`);
      expect(missing).toEqual([]);
      expect(duplicates).toBe(0);
      expect(torn).toBe(0);
      server.child.kill('SIGKILL');
      await server.exited;
    }
    expect(rounds).toBeGreaterThanOrEqual(Math.min(ROUNDS, 8));
    expect(acked.size).toBeGreaterThan(rounds);
  }, TIME_BUDGET_MS + 60_000);
});
