/**
 * Every metric name the alerting rules (deploy/prometheus/alerts.yml) and
 * the Grafana dashboard (deploy/grafana/sensor-ingest.json) use exists: a
 * live built ingest server forwarding to a real nats-server, and a live
 * collector reading from it, are scraped after readings went through, and
 * each name must be a metric family (`# TYPE <name>`) of one of them, or a
 * `_bucket`/`_sum`/`_count` series of one of their histograms. The label
 * names the expressions group and match by must be in the scrapes too.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { STREAMS, collectorEnv, ingestEnv, metricSum } from '../support/edge-central.js';
import { postJson } from '../support/http-client.js';
import { requireNatsServer, startNats, stopAllNats } from '../support/nats.js';
import { COLLECT } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { testDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { dashboardExprs, exposes, labelNames, metricFamilies, metricNames, readAlertRules, readDashboard } from './monitoring.js';

const servers = useServers();
afterAll(stopAllNats);

/** Every PromQL expression of the rules and the dashboard, with where it is. */
const EXPRESSIONS = [
  ...readAlertRules().map(({ alert, expr }) => ({ where: `alerts.yml ${alert}`, expr })),
  ...dashboardExprs(readDashboard()).map(({ where, expr }) => ({ where: `sensor-ingest.json ${where}`, expr })),
];

/** Labels Prometheus adds at scrape time: never in a target's own exposition. */
const TARGET_LABELS = new Set(['instance', 'job']);

async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

describe('metric names in the alerts and the dashboard', () => {
  it('are found in PromQL apart from functions, keywords, label names, variables, strings and numbers', () => {
    expect(
      metricNames('histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{instance=~"$instance", route!="/events"}[$__rate_interval])))'),
    ).toEqual(['http_request_duration_seconds_bucket']);
    expect(metricNames('write_queue_length > 0 and increase(write_success_total[2m]) == 0')).toEqual(['write_queue_length', 'write_success_total']);
    expect(metricNames('sum(rate(a_total[5m] offset 1h)) by (stream) / on(instance) group_left(site) b * 1e3 > bool 0.5 or vector(1) unless c{x="y"} @ start()')).toEqual([
      'a_total',
      'b',
      'c',
    ]);
    expect(metricNames('count_values("version", build_info) + label_replace(up, "dst", "$1", "src", "(.*)") > Inf')).toEqual(['build_info', 'up']);
    expect(metricNames('min_over_time(forward_lag_rows[10m:1m]) > 0 and delta(forward_lag_rows[${__range}]) >= -0x10')).toEqual(['forward_lag_rows']);
    expect(labelNames('sum by (le, route) (rate(x_bucket{instance=~"$instance", route!="/events"}[5m])) / on (instance) group_left (site) y')).toEqual([
      'instance',
      'le',
      'route',
      'site',
    ]);
  });

  it('are many, from both files', () => {
    const names = new Set(EXPRESSIONS.flatMap(({ expr }) => metricNames(expr)));
    expect(EXPRESSIONS.filter(({ where }) => where.startsWith('alerts.yml')).length).toBeGreaterThanOrEqual(8);
    expect(names.size).toBeGreaterThanOrEqual(20);
    for (const { where, expr } of EXPRESSIONS) expect(metricNames(expr).length, `${where}: ${expr}`).toBeGreaterThan(0);
  });

  it('all exist on a live ingest server with forwarding on, or on a live collector', async (context) => {
    requireNatsServer(context);
    const nats = await startNats();
    const ingest = await servers.start(ingestEnv(testDir('names-edge-'), nats.url));
    const collector = await servers.start(collectorEnv(testDir('names-central-'), nats.url), COLLECT);

    // A reading on every stream (durable: written, so forwarded) and a refused one, so the labelled series exist.
    for (const [i, stream] of STREAMS.entries()) {
      expect((await postJson(`${ingest.url}/${stream}?ack=durable`, { id: `n${i}`, t: 20 + i })).status).toBe(201);
    }
    const refused = await fetch(`${ingest.url}/${STREAMS[0]}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    expect(refused.status).toBe(400);
    await waitFor(async () => (await metricSum(collector.url, 'collect_rows_total')) === STREAMS.length, 'the collector to write the 4 rows');
    await waitFor(async () => (await metricSum(ingest.url, 'forward_connected')) === 1, 'forward_connected to be 1');

    const [edgeText, centralText] = await Promise.all([scrape(ingest.url), scrape(collector.url)]);
    const edge = metricFamilies(edgeText);
    const central = metricFamilies(centralText);
    const families = new Map([...central, ...edge]);
    // Forwarding is on at the edge, and the collector exposes its own.
    expect(edge.get('forward_lag_rows')).toBe('gauge');
    expect(central.get('collect_invalid_total')).toBe('counter');

    const used = new Map<string, string[]>();
    for (const { where, expr } of EXPRESSIONS) for (const name of metricNames(expr)) used.set(name, [...(used.get(name) ?? []), where]);
    const missing = [...used].filter(([name]) => !exposes(families, name)).map(([name, where]) => `${name} (${where.join('; ')})`);
    const onlyAt = (name: string) => (exposes(edge, name) ? (exposes(central, name) ? 'both' : 'ingest') : exposes(central, name) ? 'collector' : 'NOWHERE');
    console.log(
      `metric names used by alerts.yml and sensor-ingest.json (${used.size}), and where they are exposed:\n` +
        [...used.keys()]
          .sort()
          .map((name) => `  ${name}: ${onlyAt(name)}`)
          .join('\n'),
    );
    expect(missing, 'metric names the alerts or the dashboard use that neither the ingest server nor the collector exposes').toEqual([]);

    const labels = new Set(EXPRESSIONS.flatMap(({ expr }) => labelNames(expr)).filter((label) => !TARGET_LABELS.has(label)));
    const scraped = `${edgeText}\n${centralText}`;
    const missingLabels = [...labels].filter((label) => !new RegExp(`[{,]${label}="`).test(scraped));
    expect(missingLabels, 'label names used that no scraped series has').toEqual([]);
    // The per-stream series the alerts watch are there for a stream that received rows.
    expect(edgeText).toMatch(/^inactivity_seconds\{stream="s1"\} /m);
    expect(edgeText).toMatch(/^forward_lag_rows\{stream="s1"\} 0$/m);
  }, 120_000);
});
