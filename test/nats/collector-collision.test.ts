/**
 * SPEC section 11: the collector refuses (terminates, counts as invalid) a
 * message whose cells collide on one column after the formula guard, as
 * ingest refuses such a reading: `=a` and `'=a` are both the header cell
 * `'=a`, and writing both would lose one of them in silence.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { SITE, metricSum, rowsOf, collectorEnv } from '../support/edge-central.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { COLLECT } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const servers = useServers();
afterAll(stopAllNats);

describe('the collector and cells that collide after the formula guard', () => {
  it('terminates the message, counts it invalid, writes none of it, and goes on with the next', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const dir = testDir('nats-collide-');
    const dataDir = join(dir, 'data');
    const collector = await servers.start(collectorEnv(dir, nats.url), COLLECT);

    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info('SENSORS').catch(() => undefined)) !== undefined, 'the collector to create the stream');
    const js = jetstream(nc);
    const send = async (offset: number, cells: Record<string, string>) => {
      const h = headers();
      h.set('Nats-Msg-Id', `${SITE}:0123456789abcdef:${offset}`);
      const body = { site: SITE, stream: 's1', file: 's1.csv', received_at: '2026-11-23T10:15:00.000Z', cells };
      await js.publish(`sensors.${SITE}.s1`, JSON.stringify(body), { headers: h });
    };
    await send(100, { id: 'colliding', '=a': 'one', "'=a": 'two' });
    await send(200, { id: 'fine', "'=a": 'guarded, as the edge sends it' });
    await nc.close();

    await waitFor(() => rowsOf(join(dataDir, SITE), 's1').length === 1, 'the valid row written');
    expect(await metricSum(collector.url, 'collect_invalid_total')).toBe(1);
    expect(rowsOf(join(dataDir, SITE), 's1')).toEqual([{ received_at: '2026-11-23T10:15:00.000Z', id: 'fine', "'=a": 'guarded, as the edge sends it' }]);
    expect(readFileSync(join(dataDir, SITE, 's1.csv'), 'utf8')).not.toContain('colliding');
    await waitFor(
      () => collector.logLines().find((line) => line.msg === 'invalid message terminated' && line.why === "keys '=a' and ''=a' land on the same column"),
      'a WARN naming the collision',
    );
  }, 60_000);
});
