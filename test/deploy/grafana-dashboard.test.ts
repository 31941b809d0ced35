/**
 * deploy/grafana/sensor-ingest.json (SPEC section 12): an importable Grafana
 * dashboard. It parses as JSON, has a fixed uid (re-importing replaces it
 * instead of adding a copy), asks for a Prometheus data source on import,
 * every panel queries it with at least one PromQL expression, the panels do
 * not overlap, and they cover the metrics of SPEC sections 6, 10 and 12.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DASHBOARD, allPanels, dashboardExprs, metricNames, readDashboard, variableQuery } from './monitoring.js';

const dashboard = readDashboard();
const panels = allPanels(dashboard);
const queryPanels = panels.filter((panel) => panel.type !== 'row');
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

describe('deploy/grafana/sensor-ingest.json', () => {
  it('is JSON with a fixed uid, a title and a current schema version, and no instance id', () => {
    expect(() => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as unknown).not.toThrow();
    expect(dashboard.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(dashboard.title).toBe('sensor-ingest');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(41);
    // An id would tie the file to the Grafana it came from; import gives it one.
    expect((dashboard as { id?: unknown }).id ?? null).toBeNull();
  });

  it('asks for the Prometheus data source on import, and offers it as a variable once provisioned', () => {
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const variables = dashboard.templating?.list ?? [];
    expect(variables.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    // Nothing else is left to substitute: every ${...} in the file is an input or a variable.
    const names = new Set(['DS_PROMETHEUS', ...variables.map((v) => v.name), '__rate_interval', '__interval', '__range']);
    for (const [, name] of readFileSync(DASHBOARD, 'utf8').matchAll(/\$\{(\w+)[^}]*\}/g)) expect(names).toContain(name);
  });

  it('has stream and instance variables from label_values, querying the data source', () => {
    const variables = dashboard.templating?.list ?? [];
    expect(variableQuery(variables.find((v) => v.name === 'stream') ?? { name: '', type: '' })).toBe('label_values(ingest_rows_total, stream)');
    expect(variableQuery(variables.find((v) => v.name === 'instance') ?? { name: '', type: '' })).toMatch(/^label_values\(\w+, instance\)$/);
    for (const variable of variables.filter((v) => v.type === 'query')) expect(variable.datasource, variable.name).toEqual(DATASOURCE);
  });

  it('gives every panel the data source and at least one target with an expr', () => {
    expect(queryPanels.length).toBeGreaterThanOrEqual(12);
    for (const panel of queryPanels) {
      const title = panel.title ?? `panel ${panel.id}`;
      expect(panel.datasource, title).toEqual(DATASOURCE);
      expect(panel.targets?.length, title).toBeGreaterThanOrEqual(1);
      for (const target of panel.targets ?? []) {
        expect(target.expr?.trim(), title).toBeTruthy();
        expect(target.datasource, title).toEqual(DATASOURCE);
      }
      expect(new Set(panel.targets?.map((t) => t.refId)).size, `${title}: refIds unique`).toBe(panel.targets?.length);
    }
  });

  it('has unique panel ids and panels that fit the 24-column grid without overlapping', () => {
    const ids = panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    for (const panel of panels) {
      const pos = panel.gridPos;
      expect(pos, panel.title).toBeDefined();
      if (pos === undefined) continue;
      expect(pos.x + pos.w, panel.title).toBeLessThanOrEqual(24);
      for (let y = pos.y; y < pos.y + pos.h; y++) {
        for (let x = pos.x; x < pos.x + pos.w; x++) {
          const taken = cells.get(`${x},${y}`);
          expect(taken, `${panel.title} overlaps ${taken}`).toBeUndefined();
          cells.set(`${x},${y}`, panel.title ?? '');
        }
      }
    }
  });

  it('covers the metrics of SPEC sections 6, 10 and 12', () => {
    const used = new Set(dashboardExprs(dashboard).flatMap(({ expr }) => metricNames(expr)));
    for (const name of [
      'ingest_rows_total',
      'ingest_rejected_total',
      'http_requests_total',
      'http_request_duration_seconds_bucket',
      'write_queue_length',
      'write_queue_maxsize',
      'write_success_total',
      'write_error_total',
      'write_fsync_duration_seconds_bucket',
      'write_batch_rows_sum',
      'inactivity_seconds',
      'last_received_timestamp_seconds',
      'forward_lag_rows',
      'forward_connected',
      'forward_rows_total',
      'forward_errors_total',
      'collect_rows_total',
      'collect_duplicates_total',
      'collect_invalid_total',
      'data_dir_bytes',
      'data_dir_free_bytes',
    ]) {
      expect(used, name).toContain(name);
    }
  });
});
