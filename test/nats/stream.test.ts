/**
 * SPEC section 10, the stream: created when missing (NATS_STREAM, subjects
 * `<prefix>.>`, file storage, NATS_REPLICAS, a 10-minute duplicate window),
 * and never changed when present, whatever its settings.
 */
import { StorageType, jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/shared/config.js';
import { ensureStream } from '../../src/nats/connection.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';

afterAll(stopAllNats);

describe('ensureStream', () => {
  it('creates a missing stream as SPEC 10 says, and leaves one that is present exactly as it is', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const config = loadConfig({ NATS_URL: nats.url, NATS_STREAM: 'ROWS', NATS_SUBJECT_PREFIX: 'farm' });

      expect(await ensureStream(jsm, config)).toBe('created');
      const created = (await jsm.streams.info('ROWS')).config;
      expect(created).toMatchObject({ subjects: ['farm.>'], storage: StorageType.File, num_replicas: 1, duplicate_window: nanos(600_000) });

      // An operator's own stream, other settings than ours: ensureStream must not touch it.
      const theirs = { name: 'THEIRS', subjects: ['farm2.>', 'other.>'], storage: StorageType.Memory, duplicate_window: nanos(60_000), max_msgs: 1000 };
      await jsm.streams.add(theirs);
      const before = (await jsm.streams.info('THEIRS')).config;
      expect(await ensureStream(jsm, { ...config, natsStream: 'THEIRS', natsSubjectPrefix: 'farm2', natsReplicas: 3 })).toBe('present');
      expect((await jsm.streams.info('THEIRS')).config).toEqual(before);
      expect(before).toMatchObject({ subjects: ['farm2.>', 'other.>'], storage: StorageType.Memory, max_msgs: 1000 });
      // And ours, asked for again, is present and unchanged.
      expect(await ensureStream(jsm, config)).toBe('present');
      expect((await jsm.streams.info('ROWS')).config).toEqual(created);
    } finally {
      await nc.close();
    }
  });
});
