/**
 * The nats-server harness itself: a single JetStream server that
 * de-duplicates by message id and keeps its store across a restart, and a
 * 3-node cluster that survives losing the node leading a stream.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type PubAck, StorageType } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { requireNatsServer, runningNatsPids, startNats, startNatsCluster, stopAllNats, streamLeader } from '../support/nats.js';

afterAll(async () => {
  await stopAllNats();
  expect(runningNatsPids()).toEqual([]);
});

/** Publishes until JetStream acks (a leader change makes publishes time out or fail for a while). */
async function publishUntilAcked(js: JetStreamClient, subject: string, data: string, msgID: string): Promise<PubAck> {
  let ack: PubAck | undefined;
  await waitFor(
    async () => {
      try {
        ack = await js.publish(subject, data, { msgID, timeout: 1_000 });
        return true;
      } catch {
        return false;
      }
    },
    `an ack for ${msgID}`,
    30_000,
  );
  return ack as PubAck;
}

describe('startNats', () => {
  it('runs one JetStream server that de-duplicates by msgID and keeps its store across restarts', async (context) => {
    requireNatsServer(context);
    const server = await startNats();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.pid).toBeGreaterThan(0);

    let nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'ONE', subjects: ['one.>'], storage: StorageType.File, duplicate_window: nanos(60_000) });
    let js = jetstream(nc);
    const first = await js.publish('one.site.data', 'a', { msgID: 'site:1:0' });
    expect(first).toMatchObject({ stream: 'ONE', seq: 1 });
    expect(first.duplicate).toBeFalsy();
    const again = await js.publish('one.site.data', 'a', { msgID: 'site:1:0' });
    expect(again).toMatchObject({ stream: 'ONE', seq: 1, duplicate: true });
    await nc.close();

    // Graceful stop and SIGKILL both come back on the same port with the same store.
    const pid = server.pid;
    await server.stop();
    expect(server.running).toBe(false);
    await server.restart();
    expect(server.pid).not.toBe(pid);
    await server.kill();
    expect(server.pid).toBeUndefined();
    await server.restart();

    nc = await connect({ servers: server.url });
    js = jetstream(nc);
    expect((await (await jetstreamManager(nc)).streams.info('ONE')).state.messages).toBe(1);
    // The duplicate window is kept in the store, so the id is still known.
    expect(await js.publish('one.site.data', 'a', { msgID: 'site:1:0' })).toMatchObject({ seq: 1, duplicate: true });
    expect(await js.publish('one.site.data', 'b', { msgID: 'site:1:2' })).toMatchObject({ seq: 2 });
    await nc.close();
    await server.stop();
    expect(server.logTail()).toContain('Server Exiting');
  });
});

describe('startNatsCluster', () => {
  it('elects a leader for a 3-replica stream and carries on when that leader is SIGKILLed', async (context) => {
    requireNatsServer(context);
    const cluster = await startNatsCluster(3);
    expect(cluster.urls).toHaveLength(3);
    expect(new Set(cluster.nodes.map((node) => node.name)).size).toBe(3);

    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'HA', subjects: ['ha.>'], storage: StorageType.File, num_replicas: 3, duplicate_window: nanos(60_000) });
      const js = jetstream(nc);
      for (let i = 0; i < 10; i++) await publishUntilAcked(js, 'ha.site.data', `row ${i}`, `site:1:${i}`);

      const leader = await streamLeader(cluster.urls, 'HA');
      expect(cluster.nodes.map((node) => node.name)).toContain(leader);
      await cluster.node(leader).kill();

      // (A try whose ack was lost makes the retry's ack a duplicate of it, with the same seq.)
      const after = await publishUntilAcked(js, 'ha.site.data', 'row 10', 'site:1:10');
      expect(after.seq).toBe(11);
      const survivors = cluster.urls.filter((url) => url !== cluster.node(leader).url);
      const next = await streamLeader(survivors, 'HA');
      expect(next).not.toBe(leader);
      // Stream info needs the meta leader, which may have been the killed node too.
      const messages = await waitFor(() => jsm.streams.info('HA').then((info) => info.state.messages, () => 0), 'stream info after the kill', 30_000);
      expect(messages).toBe(11);

      // The killed node comes back and catches up (restart waits for its /healthz, which needs it current).
      await cluster.node(leader).restart();
      expect(cluster.node(leader).running).toBe(true);
    } finally {
      await nc.close();
      await cluster.stop();
    }
    expect(cluster.nodes.every((node) => !node.running)).toBe(true);
  });
});
