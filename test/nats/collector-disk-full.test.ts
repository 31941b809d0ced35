/**
 * The collector on a full disk (SPEC 7 and 10): SIGTERM while its writer
 * cannot write ends within SHUTDOWN_TIMEOUT_SEC, with an ERROR and exit 1,
 * and nothing is lost: the rows were never acked but given back (nak), so
 * once there is room a restarted collector writes every one, once, in order,
 * without waiting out the 30 s ack wait.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { encodeRowMessage, messageId } from '../../src/nats/row-message.js';
import { duplicateIds, metricSum, rowsOf } from '../support/edge-central.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { COLLECT } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';
import { NO_TMPFS, fill, mountTmpfs, unmountAll } from '../support/tmpfs.js';
import { waitFor } from '../support/wait.js';

const FILE_ID = '0123456789abcdef';
// Registered before useServers: vitest runs afterEach hooks last first, so the collector stops before the unmount.
afterEach(() => unmountAll());
const servers = useServers();
afterAll(stopAllNats);

describe('the collector on a full disk', () => {
  it('SIGTERM while it cannot write: ERROR, exit 1 within SHUTDOWN_TIMEOUT_SEC; after a restart with room, every row once', async (context) => {
    requireNatsServer(context);
    const dir = testDir('collect-full-');
    const disk = join(dir, 'disk');
    if (!mountTmpfs(disk, '512k')) {
      context.skip(NO_TMPFS);
      return;
    }
    const nats = await startNats();
    const dataDir = join(disk, 'data');
    const logDir = join(dir, 'logs');
    const faults = { WRITE_RETRIES: '1', WRITE_BACKOFF_BASE_SEC: '0.02', WRITE_BACKOFF_MAX_SEC: '0.2', SHUTDOWN_TIMEOUT_SEC: '3' };
    const env = { DATA_DIR: dataDir, LOG_DIR: logDir, NATS_URL: nats.url };
    let collector = await servers.start({ ...env, ...faults }, COLLECT);
    const central = join(dataDir, 'pi');

    const nc = await connect({ servers: nats.url });
    const js = jetstream(nc);
    let offset = 'received_at,id,note\n'.length;
    const publish = async (ids: number[]) => {
      for (const id of ids) {
        const cells = [String(id), 'x'.repeat(100)];
        const text = encodeRowMessage({ site: 'pi', stream: 'data', file: 'data.csv', received_at: new Date(Date.UTC(2026, 10, 24, 10, 0, 0, id)).toISOString(), cells: {} }, ['id', 'note'], cells);
        await js.publish('sensors.pi.data', text, { msgID: messageId({ site: 'pi', fileId: FILE_ID, offset }) });
        offset += 25 + cells.join(',').length + 1;
      }
    };
    await waitFor(async () => (await js.jetstreamManager()).streams.info('SENSORS').then(() => true, () => false), 'the stream');
    await publish(Array.from({ length: 20 }, (_, i) => i));
    await waitFor(() => rowsOf(central, 'data').length === 20, 'the first 20 central rows');

    const filler = fill(disk);
    await publish(Array.from({ length: 20 }, (_, i) => 20 + i));
    await waitFor(async () => (await metricSum(collector.url, 'write_error_total')) > 0, 'a failed central write');

    const signalledAt = Date.now();
    collector.child.kill('SIGTERM');
    const exit = await collector.exited;
    const stopMs = Date.now() - signalledAt;
    expect(exit.code).toBe(1);
    expect(collector.logLines().some((line) => line.level === 50 && line.msg === 'the batch in hand could not be written before the shutdown deadline; it comes again')).toBe(true);
    // 3 s, then the log flush (at most 2 s): not one full timeout for each step.
    expect(stopMs).toBeLessThan(3_000 + 2_500);

    rmSync(filler);
    collector = await servers.start(env, COLLECT);
    // Within 15 s of the SIGTERM: without the nak, JetStream would hand them out again only 30 s after it
    // last delivered them, which was before the SIGTERM.
    await waitFor(() => rowsOf(central, 'data').length >= 40, 'all 40 central rows', Math.max(1, 15_000 - (Date.now() - signalledAt)));
    const rows = rowsOf(central, 'data');
    console.log(`collector, disk full at SIGTERM: stopped in ${stopMs} ms; after a restart with room ${rows.length} central rows, ${duplicateIds(rows).length} duplicates`);
    // In order: the rows not written were given back (nak), so they come again before the ack wait, in turn.
    expect(rows.map((row) => Number(row.id))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(duplicateIds(rows)).toEqual([]);
    await nc.close();
  }, 120_000);
});
