/**
 * SPEC section 10 end to end, with real nats-server processes: an ingest
 * server forwarding to JetStream and a collector writing the central files.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { SITE, STREAMS, duplicateIds, ingestEnv, metricSum, postLoad, rowKey, rowsOf, waitForCentral, collectorEnv } from '../support/edge-central.js';
import { freePort } from '../support/http-client.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { COLLECT } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const servers = useServers();
const dir = () => testDir('nats-e2e-');
afterAll(stopAllNats);

describe('forwarding and collecting', () => {
  it('2,000 readings over 4 streams, 50 in flight: the central files hold exactly the edge rows, in order, one header each', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const [edge, central] = [dir(), dir()];
    const ingest = await servers.start(ingestEnv(edge, nats.url));
    const collector = await servers.start(collectorEnv(central, nats.url), COLLECT);

    const acked = await postLoad(() => ingest.url, 2000, { widenEvery: 400 });
    expect(acked.size).toBe(2000);
    await waitForCentral(join(central, 'data'), acked, STREAMS);
    await waitFor(async () => (await metricSum(ingest.url, 'forward_lag_rows')) === 0, 'forward_lag_rows to be 0');

    const retried = (await metricSum(ingest.url, 'forward_errors_total')) > 0;
    for (const stream of STREAMS) {
      const local = rowsOf(join(edge, 'data'), stream);
      const remote = rowsOf(join(central, 'data', SITE), stream);
      expect(duplicateIds(remote)).toEqual([]);
      expect(remote.map(rowKey).sort()).toEqual(local.map(rowKey).sort());
      // Same order as the edge's unless a publish had to be retried (SPEC section 10).
      if (!retried) expect(remote.map((row) => row.id)).toEqual(local.map((row) => row.id));
    }
    expect(await metricSum(collector.url, 'collect_rows_total')).toBe(2000);
    expect(await metricSum(ingest.url, 'forward_rows_total')).toBe(2000);
    const ready = (await (await fetch(`${collector.url}/readyz`)).json()) as { checks: { nats: { ok: boolean } } };
    expect(ready.checks.nats.ok).toBe(true);
    console.log(`end to end: 2000 rows acknowledged, ${2000} in the central files, 0 duplicates, retried publishes: ${retried}`);
  }, 120_000);

  it('NATS down at first: every post is 2xx; once nats-server starts every row arrives once and forward_lag_rows returns to 0', async (context) => {
    requireNatsServer(context);
    const natsPort = await freePort();
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    const [edge, central] = [dir(), dir()];
    const ingest = await servers.start(ingestEnv(edge, natsUrl));

    const acked = await postLoad(() => ingest.url, 400, { concurrency: 20 });
    expect(acked.size).toBe(400);
    expect(await metricSum(ingest.url, 'forward_connected')).toBe(0);
    await waitFor(async () => (await metricSum(ingest.url, 'forward_lag_rows')) === 400, 'forward_lag_rows to count the 400 waiting rows');

    const nats = await startNats({ port: natsPort });
    await servers.start(collectorEnv(central, nats.url), COLLECT);
    await waitForCentral(join(central, 'data'), acked, STREAMS);
    await waitFor(async () => (await metricSum(ingest.url, 'forward_lag_rows')) === 0, 'forward_lag_rows back to 0', 30_000);
    expect(await metricSum(ingest.url, 'forward_connected')).toBe(1);
    const remote = STREAMS.flatMap((stream) => rowsOf(join(central, 'data', SITE), stream));
    expect(duplicateIds(remote)).toEqual([]);
    expect(remote).toHaveLength(400);
    console.log(`NATS down first: 400 acknowledged while down, ${remote.length} found centrally, 0 duplicates`);
  }, 120_000);

  it('SIGTERM with NATS unreachable still drains and exits 0 at once; the rows wait in the files for the next start', async () => {
    const [edge] = [dir()];
    const natsUrl = `nats://127.0.0.1:${await freePort()}`;
    const ingest = await servers.start(ingestEnv(edge, natsUrl));
    const acked = await postLoad(() => ingest.url, 100, { concurrency: 10 });
    const stopAsked = Date.now();
    ingest.child.kill('SIGTERM');
    expect((await ingest.exited).code).toBe(0);
    expect(Date.now() - stopAsked).toBeLessThan(10_000);
    const local = STREAMS.flatMap((stream) => rowsOf(join(edge, 'data'), stream));
    expect(local.map((row) => row.id).sort()).toEqual([...acked].sort());
  }, 60_000);

  it('terminates messages that are not valid rows, counts them, and writes nothing outside DATA_DIR/<site>/', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const [edge, central] = [dir(), dir()];
    // The ingest server creates the stream; it also gives the collector one good row to prove it runs.
    const ingest = await servers.start(ingestEnv(edge, nats.url));
    const collector = await servers.start(collectorEnv(central, nats.url), COLLECT);
    const good = await postLoad(() => ingest.url, 1, {});
    await waitForCentral(join(central, 'data'), good, STREAMS);

    const nc = await connect({ servers: nats.url });
    const js = jetstream(nc);
    const withId = (id: string) => {
      const h = headers();
      h.set('Nats-Msg-Id', id);
      return h;
    };
    const valid = { site: SITE, stream: 's1', file: 's1.csv', received_at: '2026-11-23T10:15:00.000Z', cells: { id: 'x' } };
    const bad: Array<[string, string, string]> = [
      ['sensors.edge1.s1', 'not json at all', `${SITE}:0123456789abcdef:1`],
      ['sensors.edge1.s1', JSON.stringify([1, 2]), `${SITE}:0123456789abcdef:2`],
      ['sensors.edge1.s1', JSON.stringify({ ...valid, cells: { id: 5 } }), `${SITE}:0123456789abcdef:3`],
      ['sensors.edge1.s1', JSON.stringify({ ...valid, received_at: 'yesterday' }), `${SITE}:0123456789abcdef:4`],
      ['sensors.x.s1', JSON.stringify({ ...valid, site: '../x' }), '../x:0123456789abcdef:5'],
      ['sensors.edge1.s1', JSON.stringify({ ...valid, stream: '../../etc' }), `${SITE}:0123456789abcdef:6`],
      ['sensors.edge1.s2', JSON.stringify(valid), `${SITE}:0123456789abcdef:7`], // stream differs from the subject
      ['sensors.edge1.s1', JSON.stringify({ ...valid, cells: { received_at: 'x' } }), `${SITE}:0123456789abcdef:8`],
      ['sensors.edge1.s1', JSON.stringify(valid), 'no-id-format'],
    ];
    for (const [subject, payload, id] of bad) await js.publish(subject, payload, { headers: withId(id) });
    await nc.close();

    await waitFor(async () => (await metricSum(collector.url, 'collect_invalid_total')) === bad.length, `collect_invalid_total to reach ${bad.length}`);
    // Terminated, not redelivered: nothing pending for the consumer.
    const centralData = join(central, 'data');
    expect(readdirSync(centralData).sort()).toEqual(['.sensor-ingest', SITE]);
    expect(existsSync(join(central, 'x'))).toBe(false);
    const rows = STREAMS.flatMap((stream) => rowsOf(join(centralData, SITE), stream));
    expect(rows.map((row) => row.id)).toEqual([...good]);
    // The log lines reach stdout a moment after the counter moves.
    await waitFor(() => collector.logLines().filter((line) => line.msg === 'invalid message terminated').length === bad.length, 'a WARN per invalid message');
  }, 60_000);
});
