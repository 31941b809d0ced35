/**
 * SPEC section 10's guarantee under faults, with real processes: every row
 * acknowledged by an ingest server reaches the central file exactly once
 * whether the ingest server, the collector or the node leading the stream
 * is killed.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SITE, STREAMS, duplicateIds, ingestEnv, metricSum, postLoad, rowKey, rowsOf, waitForCentral, collectorEnv } from '../support/edge-central.js';
import { requireNatsServer, startNats, startNatsCluster, stopAllNats, streamLeader } from '../support/nats.js';
import { COLLECT } from '../support/paths.js';
import { type ServerProcess, killServer, useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const servers = useServers();
const dir = () => testDir('nats-kill-');
afterAll(stopAllNats);

/** The edge's rows and the central rows agree exactly, with no id twice; returns the central row count. */
function expectSameRows(edgeData: string, centralData: string): number {
  let total = 0;
  for (const stream of STREAMS) {
    const local = rowsOf(edgeData, stream);
    const remote = rowsOf(join(centralData, SITE), stream);
    expect(duplicateIds(remote), `duplicates in ${stream}`).toEqual([]);
    expect(remote.map(rowKey).sort(), `rows of ${stream}`).toEqual(local.map(rowKey).sort());
    total += remote.length;
  }
  return total;
}

describe('exactly once under faults', () => {
  it('the ingest server is SIGKILLed twice while forwarding under load and restarted: every acknowledged row arrives once, archives included', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const [edge, central] = [dir(), dir()];
    const env = ingestEnv(edge, nats.url, { ACK_MODE: 'durable' });
    let ingest = await servers.start(env);
    await servers.start(collectorEnv(central, nats.url), COLLECT);

    const load = postLoad(() => ingest.url, 3000, { concurrency: 30, widenEvery: 150, retryRefused: true });
    for (let round = 1; round <= 2; round++) {
      // Kill once this process has taken 600 rows and forwarding is under way.
      await waitFor(async () => (await metricSum(ingest.url, 'ingest_rows_total')) >= 600, `600 rows posted (round ${round})`, 60_000);
      await waitFor(async () => (await metricSum(ingest.url, 'forward_rows_total')) > 0, 'forwarding to be under way');
      await killServer(ingest);
      ingest = await servers.start(env);
    }
    const ackedIds = await load;
    expect(ackedIds.size).toBe(3000);

    await waitForCentral(join(central, 'data'), ackedIds, STREAMS);
    await waitFor(async () => (await metricSum(ingest.url, 'forward_lag_rows')) === 0, 'forward_lag_rows to be 0', 30_000);
    const found = expectSameRows(join(edge, 'data'), join(central, 'data'));
    const archives = rowsOf(join(edge, 'data'), 's1').length > 0 && (await import('node:fs')).readdirSync(join(edge, 'data')).filter((name) => /\.\d{8}T\d{6}Z(-\d+)?\.csv$/.test(name));
    expect((archives as string[]).length).toBeGreaterThan(0);
    console.log(`ingest SIGKILL x2: ${ackedIds.size} acknowledged, ${found} central rows (= edge rows), 0 duplicates, ${(archives as string[]).length} edge archives`);
  }, 180_000);

  it('the collector is SIGKILLed mid-batch five times under load and restarted: every row once, files parse cleanly', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const [edge, central] = [dir(), dir()];
    const ingest = await servers.start(ingestEnv(edge, nats.url));
    const centralEnv = collectorEnv(central, nats.url);
    let collector = await servers.start(centralEnv, COLLECT);

    const load = postLoad(() => ingest.url, 4000, { concurrency: 20, widenEvery: 300 });
    // Once every row is posted and collected there is nothing new to write: a later round still kills and restarts.
    let loaded = false;
    void load.then(() => (loaded = true));
    let cuts = 0;
    for (let round = 1; round <= 5; round++) {
      const before = await metricSum(collector.url, 'collect_rows_total');
      // Generous: a restart may wait for the dead collector's locks to go stale and for JetStream's
      // ack wait (30 s) to hand its messages out again, and on a loaded 2-core CI machine more.
      await waitFor(
        async () => (await metricSum(collector.url, 'collect_rows_total')) > before || (loaded && (await metricSum(ingest.url, 'forward_lag_rows')) === 0),
        `the collector to write (round ${round})`,
        120_000,
      );
      // A random moment while rows stream in: inside a write, between a write and its journal line, or between batches.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 150)));
      await killServer(collector);
      collector = await servers.start(centralEnv, COLLECT);
      cuts += collector.logLines().filter((line) => line.msg === 'cut rows written but not journaled; they come again').length;
    }
    const ackedIds = await load;
    expect(ackedIds.size).toBe(4000);
    // A killed collector's unacked messages come back after the ack wait (30 s).
    await waitForCentral(join(central, 'data'), ackedIds, STREAMS, 120_000);
    const found = expectSameRows(join(edge, 'data'), join(central, 'data'));
    const skipped = await metricSum(collector.url, 'collect_duplicates_total');
    console.log(`collector SIGKILL x5: 4000 acknowledged, ${found} central rows, 0 duplicates written, ${skipped} redelivered rows skipped by the journal after the last restart, ${cuts} central files cut back to their journaled length at start-ups`);
  }, 600_000);

  it('two servers on one DATA_DIR: one forwards; when it is SIGKILLed the other takes over, and every row arrives once', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const [edge, central] = [dir(), dir()];
    const env = ingestEnv(edge, nats.url, { ACK_MODE: 'durable' });
    const [one, two] = [await servers.start(env), await servers.start(env)];
    await servers.start(collectorEnv(central, nats.url), COLLECT);
    const forwarding = async (server: ServerProcess): Promise<boolean> =>
      ((await (await fetch(`${server.url}/readyz`)).json()) as { checks: { forward: { forwarding: boolean } } }).checks.forward.forwarding;

    // Both take rows; only the lock holder sends, including the other's rows.
    const first = new Set([
      ...(await postLoad(() => one.url, 300, { concurrency: 10, prefix: 'a' })),
      ...(await postLoad(() => two.url, 300, { concurrency: 10, prefix: 'b' })),
    ]);
    await waitForCentral(join(central, 'data'), first, STREAMS);
    const holders = [await forwarding(one), await forwarding(two)];
    expect(holders.filter(Boolean)).toHaveLength(1);
    const [holder, other] = holders[0] ? [one, two] : [two, one];

    await killServer(holder);
    const second = await postLoad(() => other.url, 300, { concurrency: 10, prefix: 'c' });
    // The dead holder's lock goes stale after 10 s; the other takes it and sends the rest.
    await waitForCentral(join(central, 'data'), second, STREAMS, 60_000);
    expect(await forwarding(other)).toBe(true);
    const found = expectSameRows(join(edge, 'data'), join(central, 'data'));
    console.log(`two servers, one DATA_DIR: ${first.size + second.size} acknowledged, ${found} central rows, 0 duplicates; forwarding taken over after the holder's SIGKILL`);
  }, 120_000);

  it('a 3-node cluster, 3 replicas: the node leading the stream is SIGKILLed under load; forwarding and collecting carry on, every row once', async (context) => {
    requireNatsServer(context);
    const cluster = await startNatsCluster(3);
    const natsUrl = cluster.urls.join(',');
    const [edge, central] = [dir(), dir()];
    const ingest = await servers.start(ingestEnv(edge, natsUrl, { NATS_REPLICAS: '3' }));
    await servers.start(collectorEnv(central, natsUrl, { NATS_REPLICAS: '3' }), COLLECT);

    const first = await postLoad(() => ingest.url, 600, { concurrency: 20, prefix: 'a' });
    await waitForCentral(join(central, 'data'), first, STREAMS);
    const leader = await streamLeader(cluster.urls, 'SENSORS');
    const load = postLoad(() => ingest.url, 1500, { concurrency: 20, prefix: 'b' });
    await waitFor(async () => (await metricSum(ingest.url, 'forward_rows_total')) > 800, 'forwarding of the second load');
    await cluster.node(leader).kill();
    const second = await load;
    expect(second.size).toBe(1500);
    const after = await postLoad(() => ingest.url, 300, { concurrency: 20, prefix: 'c' });
    const all = new Set([...first, ...second, ...after]);
    await waitForCentral(join(central, 'data'), all, STREAMS, 120_000);
    const newLeader = await streamLeader(cluster.nodes.filter((node) => node.name !== leader).map((node) => node.url), 'SENSORS');
    expect(newLeader).not.toBe(leader);
    const found = expectSameRows(join(edge, 'data'), join(central, 'data'));
    const errors = await metricSum(ingest.url, 'forward_errors_total');
    console.log(`cluster leader ${leader} SIGKILLed (new leader ${newLeader}): ${all.size} acknowledged, ${found} central rows, 0 duplicates, ${errors} publishes retried`);
    await cluster.stop();
  }, 180_000);
});
