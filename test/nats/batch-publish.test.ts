/**
 * The forwarder's batch publisher against a real nats-server: a chunk of
 * messages acknowledged on one reply subscription, duplicates kept once by
 * Nats-Msg-Id, and every way a message can go unacknowledged reported in
 * words (no stream for the subject, a stream that refuses, a server that is
 * gone, a publisher closed while waiting).
 */
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, headers, nanos } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createBatchPublisher, problemOf } from '../../src/nats/batch-publish.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';

afterAll(async () => {
  await stopAllNats();
});

describe('createBatchPublisher', () => {
  it('publishes a chunk at once, each acknowledged; ids already stored are kept once', async (context) => {
    requireNatsServer(context);
    const server = await startNats();
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'B', subjects: ['b.>'], storage: StorageType.File, duplicate_window: nanos(60_000) });
    const publisher = createBatchPublisher(nc);

    const chunk = Array.from({ length: 500 }, (_, i) => ({ subject: 'b.site.data', id: `site:1:${i}`, payload: `{"n":${i}}` }));
    expect(await publisher.publish(chunk, 5_000)).toEqual(chunk.map(() => undefined));
    // The same ids again (a retry after a lost ack): acknowledged, stored once.
    expect(await publisher.publish(chunk.slice(0, 100), 5_000)).toEqual(new Array(100).fill(undefined));
    expect((await jsm.streams.info('B')).state.messages).toBe(500);
    const last = await (await jsm.streams.get('B')).getMessage({ seq: 500 });
    expect(last?.header.get('Nats-Msg-Id')).toBe('site:1:499');
    expect(last?.string()).toBe('{"n":499}');

    // No stream takes the subject: the server answers 503 at once.
    const [nobody] = await publisher.publish([{ subject: 'elsewhere.x', id: 'x:1:0', payload: '{}' }], 5_000);
    expect(nobody).toMatch(/JetStream answered 503/);
    // The stream refuses (a message over its size limit).
    await jsm.streams.update('B', { max_msg_size: 8 });
    const [refused] = await publisher.publish([{ subject: 'b.site.data', id: 'site:1:9999', payload: '{"far too long":1}' }], 5_000);
    expect(refused).toMatch(/JetStream refused the message/);

    // The server goes away: nothing is acknowledged, within the timeout.
    await server.kill();
    const gone = await publisher.publish([{ subject: 'b.site.data', id: 'site:1:10000', payload: '{}' }], 300);
    expect(gone).toEqual(['no acknowledgement within 300 ms']);
    // What waits when the connection drops is given up at once.
    const waiting = publisher.publish([{ subject: 'b.site.data', id: 'site:1:10001', payload: '{}' }], 60_000);
    publisher.abandon('disconnected from NATS');
    expect(await waiting).toEqual(['disconnected from NATS']);
    publisher.close();
    await nc.close();
  });
});

describe('problemOf', () => {
  const message = (data: string, status?: [number, string]) => {
    const bytes = new TextEncoder().encode(data);
    return { data: bytes, string: () => data, headers: status === undefined ? undefined : headers(status[0], status[1]) };
  };

  it('takes a PubAck, a duplicate included, and says why anything else is not one', () => {
    expect(problemOf(message('{"stream":"B","seq":7}'))).toBeUndefined();
    expect(problemOf(message('{"stream":"B","seq":7,"duplicate":true}'))).toBeUndefined();
    expect(problemOf(message('', [503, 'No Responders']))).toBe('JetStream answered 503 No Responders');
    expect(problemOf(message(''))).toBe('JetStream answered with an empty message');
    expect(problemOf(message('not json'))).toBe('JetStream answered with something other than a PubAck');
    expect(problemOf(message('{"error":{"code":503,"description":"insufficient resources"}}'))).toBe('JetStream refused the message: insufficient resources');
    expect(problemOf(message('{"error":{"code":400}}'))).toBe('JetStream refused the message: {"code":400}');
    expect(problemOf(message('{"stream":"B"}'))).toBe('JetStream answered with a PubAck without a sequence');
  });
});
