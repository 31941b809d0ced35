/**
 * deploy/nats/nats-{1,2,3}.conf: each parses (`nats-server -c <file> -t`),
 * the three describe one cluster, and, with only hosts, ports and the store
 * dir moved to loopback temp values, they really start as a JetStream
 * cluster that places a 3-replica stream on all three nodes (-t checks
 * syntax and field names, not that a cluster can form).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/paths.js';
import { type ClusterNodeSpec, checkNatsConfig, requireNatsServer, startNatsCluster, stopAllNats, streamLeader } from '../support/nats.js';

const NAMES = ['nats-1', 'nats-2', 'nats-3'];
const file = (name: string) => join(ROOT, 'deploy', 'nats', `${name}.conf`);
const text = (name: string) => readFileSync(file(name), 'utf8');
/** The config without comments and blank lines, lines trimmed. */
const settings = (name: string) =>
  text(name)
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '');

afterAll(stopAllNats);

describe('deploy/nats', () => {
  it.for(NAMES)('%s.conf passes nats-server -t', (name, context) => {
    requireNatsServer(context);
    const result = checkNatsConfig(file(name));
    expect(result.output).toContain('is valid');
    expect(result.status).toBe(0);
  });

  it('describes one 3-node JetStream cluster: same cluster and routes, its own server_name each', () => {
    const configs = NAMES.map(settings);
    configs.forEach((lines, i) => {
      expect(lines).toContain(`server_name: ${NAMES[i]}`);
      expect(lines).toEqual(
        expect.arrayContaining(['listen: 0.0.0.0:4222', 'http: 0.0.0.0:8222', 'store_dir: /var/lib/nats', 'name: sensors', 'listen: 0.0.0.0:6222']),
      );
      expect(lines.filter((line) => line.startsWith('nats-route://'))).toEqual(NAMES.map((n) => `nats-route://${n}.example.lan:6222`));
      // Apart from server_name the three are the same.
      expect(lines.filter((line) => !line.startsWith('server_name:'))).toEqual(configs[0]?.filter((line) => !line.startsWith('server_name:')));
    });
  });

  it('starts as a cluster on loopback that holds a 3-replica stream', async (context) => {
    requireNatsServer(context);
    /** The shipped file with hosts, ports and the store dir moved to this node's loopback values. */
    const rewrite = (node: ClusterNodeSpec) => {
      const out = text(node.name)
        .replace('listen: 0.0.0.0:4222', `listen: 127.0.0.1:${node.port}`)
        .replace('http: 0.0.0.0:8222', `http: 127.0.0.1:${node.monitorPort}`)
        .replace('listen: 0.0.0.0:6222', `listen: 127.0.0.1:${node.clusterPort}`)
        .replace('store_dir: /var/lib/nats', `store_dir: ${JSON.stringify(node.storeDir)}`)
        .replace(/nats-(\d)\.example\.lan:6222/g, (_, n: string) => `127.0.0.1:${node.routes[Number(n) - 1]}`);
      expect(out.replace(/#.*/g, '')).not.toMatch(/0\.0\.0\.0|example\.lan|\/var\/lib/);
      return out;
    };
    const cluster = await startNatsCluster(3, { names: NAMES, config: rewrite });
    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.add({ name: 'SENSORS', subjects: ['sensors.>'], storage: StorageType.File, num_replicas: 3 });
      expect(info.cluster?.name).toBe('sensors');
      const leader = await streamLeader(cluster.urls, 'SENSORS');
      expect(NAMES).toContain(leader);
      expect(await jetstream(nc).publish('sensors.site.data', '{}', { msgID: 'site:1:0' })).toMatchObject({ stream: 'SENSORS', seq: 1 });
      const replicas = (await jsm.streams.info('SENSORS')).cluster?.replicas ?? [];
      expect(replicas.map((peer) => peer.name).sort()).toEqual(NAMES.filter((name) => name !== leader));
    } finally {
      await nc.close();
      await cluster.stop();
    }
  });
});
