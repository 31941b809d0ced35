/**
 * SPEC section 11, "File identity", end to end with a real nats-server: an
 * error reading a file's state (here ELOOP: the state path made a symlink
 * loop, as EMFILE or EIO would fail the open) fails the write attempt, which
 * is retried. Taken as "no state", it gave the file a new id, and the
 * forwarder sent its rows again under it: the collector stored them twice.
 */
import { renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { statePathOf } from '../../src/storage/file-state.js';
import { SITE, duplicateIds, ingestEnv, metricSum, rowsOf, waitForCentral, collectorEnv } from '../support/edge-central.js';
import { postJson } from '../support/http-client.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { COLLECT } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const servers = useServers();
const dir = () => testDir('nats-state-');
afterAll(stopAllNats);

describe('a file state that cannot be read', () => {
  it('fails the write and retries it; once the state reads again, the file keeps its id and nothing reaches the central files twice', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const [edge, central] = [dir(), dir()];
    const dataDir = join(edge, 'data');
    const env = { WRITE_RETRIES: '1', WRITE_BACKOFF_BASE_SEC: '0.02', WRITE_BACKOFF_MAX_SEC: '0.1', STREAMS: 's1' };
    const ingest = await servers.start(ingestEnv(edge, nats.url, env));
    const collector = await servers.start(collectorEnv(central, nats.url), COLLECT);

    const post = async (id: string) => (await postJson(`${ingest.url}/s1`, { id, t: 1 })).status;
    const first = new Set(['a1', 'a2', 'a3']);
    for (const id of first) expect(await post(id)).toBe(202);
    await waitForCentral(join(central, 'data'), first, ['s1']);

    // The state becomes unreadable (not missing): a symlink that points at itself.
    const state = statePathOf(join(dataDir, 's1.csv'));
    renameSync(state, `${state}.aside`);
    symlinkSync(state, state);
    expect(await post('b1')).toBe(202);
    await waitFor(() => ingest.logLines().some((line) => line.msg === 'write failed' && line.code === 'ELOOP'), 'a failed attempt with ELOOP');
    await waitFor(async () => ((await (await fetch(`${ingest.url}/readyz`)).json()) as { checks: { writer: { stalled: boolean } } }).checks.writer.stalled, 'the writer to stall');
    expect(rowsOf(dataDir, 's1').map((row) => row.id)).toEqual(['a1', 'a2', 'a3']);

    // The fault clears: the same state is back, and the queued row is written under the file's own id.
    unlinkSync(state);
    renameSync(`${state}.aside`, state);
    expect(await post('b2')).toBe(202);
    const all = new Set([...first, 'b1', 'b2']);
    await waitForCentral(join(central, 'data'), all, ['s1']);
    await waitFor(async () => (await metricSum(ingest.url, 'forward_lag_rows')) === 0, 'forward_lag_rows to be 0');

    const edgeRows = rowsOf(dataDir, 's1');
    const centralRows = rowsOf(join(central, 'data', SITE), 's1');
    console.log(`state read error: ${edgeRows.length} edge rows, ${centralRows.length} central rows`);
    expect(edgeRows.map((row) => row.id)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
    expect(duplicateIds(centralRows)).toEqual([]);
    expect(centralRows).toHaveLength(5);
    expect(await metricSum(collector.url, 'collect_duplicates_total')).toBe(0);
  }, 90_000);
});
