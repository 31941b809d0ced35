/**
 * deploy/prometheus/alerts.yml (SPEC section 12): it passes `promtool check
 * rules`, its unit tests in alerts.test.yml pass `promtool test rules`, and
 * those tests are not vacuous (an alert that never fires fails them). Each
 * alert has a severity, a `for:` and annotations that say what to do, naming
 * log lines the code really logs.
 */
import { copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/shared/config.js';
import { ROOT } from '../support/paths.js';
import { testDir } from '../support/temp-dir.js';
import { ALERTS, ALERT_TESTS, alertRules, promtool, readAlertRules, requirePromtool } from './monitoring.js';

/** The seven kinds SPEC section 12 names; forward lagging is two alerts (lag not falling, disconnected). */
const EXPECTED = [
  'SensorIngestStreamInactive',
  'SensorIngestQueueBacklog',
  'SensorIngestWriterStalled',
  'SensorIngestWriteErrors',
  'SensorIngestDiskLow',
  'SensorIngestForwardLagging',
  'SensorIngestForwardDisconnected',
  'SensorIngestCollectorInvalidMessages',
];

const rules = readAlertRules();
const rule = (name: string) => {
  const found = rules.find((r) => r.alert === name);
  if (found === undefined) throw new Error(`no alert ${name} in alerts.yml`);
  return found;
};

/** `5m`, `1h30m` → seconds. */
function seconds(duration: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, y: 31_536_000 };
  const parts = [...duration.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)];
  expect(parts.map((p) => p[0]).join('')).toBe(duration);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * (units[unit ?? ''] ?? Number.NaN), 0);
}

/** Every .ts file under src/, as one text. */
function sourceText(dir = join(ROOT, 'src')): string {
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .map((path) => (statSync(path).isDirectory() ? sourceText(path) : path.endsWith('.ts') ? readFileSync(path, 'utf8') : ''))
    .join('\n');
}

describe('deploy/prometheus/alerts.yml', () => {
  it('passes promtool check rules, its linter included', (context) => {
    requirePromtool(context);
    const result = promtool(['check', 'rules', '--lint=all', '--lint-fatal', ALERTS]);
    console.log(`promtool check rules:\n${result.output.trimEnd()}`);
    expect(result.output).toContain(`SUCCESS: ${EXPECTED.length} rules found`);
    expect(result.status).toBe(0);
  });

  it('passes its promtool unit tests (alerts.test.yml)', (context) => {
    requirePromtool(context);
    const result = promtool(['test', 'rules', ALERT_TESTS]);
    console.log(`promtool test rules:\n${result.output.trimEnd()}`);
    expect(result.output).toContain('SUCCESS');
    expect(result.output).not.toContain('FAILED');
    expect(result.status).toBe(0);
  });

  it('has unit tests that fail for each alert once its expression never fires', (context) => {
    requirePromtool(context);
    const text = readFileSync(ALERTS, 'utf8');
    expect(rules).toHaveLength(EXPECTED.length);
    for (const { alert, expr } of rules) {
      const dir = testDir('alerts-mutant-');
      const line = `expr: ${expr}`;
      expect(text.split(line), `alerts.yml has the line '${line}' once`).toHaveLength(2);
      writeFileSync(join(dir, 'alerts.yml'), text.replace(line, 'expr: vector(0) > 1'));
      copyFileSync(ALERT_TESTS, join(dir, 'alerts.test.yml'));
      const result = promtool(['test', 'rules', join(dir, 'alerts.test.yml')]);
      expect(result.status, `${alert} never firing still passes alerts.test.yml`).toBe(1);
      expect(result.output).toContain(`alertname: ${alert}`);
    }
  });

  it('holds the alerts the SPEC names, read the same way promtool counts them', () => {
    expect(rules.map((r) => r.alert)).toEqual(EXPECTED);
    expect(alertRules(readFileSync(ALERTS, 'utf8'))).toEqual(rules);
    for (const r of rules) expect(r.expr, r.alert).not.toBe('');
    // Quoted scalars come back unescaped, as promtool reads them.
    expect(rule('SensorIngestWriteErrors').annotations.summary).toContain('({{ printf "%.0f" $value }} failed attempts');
    expect(rule('SensorIngestWriterStalled')).toMatchObject({ expr: 'write_queue_length > 0 and increase(write_success_total[2m]) == 0', for: '3m', labels: { severity: 'critical' } });
  });

  it('gives every alert a severity, a for: against flapping, and a summary and description that say what to do', () => {
    for (const { alert, for: holdFor, labels, annotations } of rules) {
      expect(['warning', 'critical'], alert).toContain(labels.severity);
      expect(holdFor, `${alert} has for:`).toBeDefined();
      expect(seconds(holdFor ?? ''), alert).toBeGreaterThanOrEqual(60);
      expect(Object.keys(annotations).sort(), alert).toEqual(['description', 'summary']);
      expect(annotations.summary, alert).toContain('{{ $labels.instance }}');
      expect(annotations.description?.length, alert).toBeGreaterThan(100);
      // Each points at the log line the server (or collector) writes for it.
      expect(annotations.description, alert).toMatch(/(WARN|ERROR) '[^']+'/);
    }
    // A stalled writer loses nothing yet but stops every row: the one to wake someone for, with a full disk.
    expect(rules.filter((r) => r.labels.severity === 'critical').map((r) => r.alert)).toEqual(['SensorIngestWriterStalled', 'SensorIngestDiskLow']);
  });

  it('names only log lines the code logs', () => {
    const source = sourceText();
    const named = rules.flatMap((r) => [...(r.annotations.description ?? '').matchAll(/(?:WARN|ERROR|INFO) '([^']+)'/g)].map((m) => m[1] ?? ''));
    expect(named.length).toBeGreaterThanOrEqual(rules.length);
    for (const message of new Set(named)) expect(source, `'${message}' is logged somewhere in src/`).toContain(`'${message}'`);
  });

  it('keeps its thresholds in step with the server settings they mirror', () => {
    expect(rule('SensorIngestDiskLow').expr).toBe(`data_dir_free_bytes < ${DEFAULTS.DISK_MIN_FREE_BYTES}`);
    const inactive = /^inactivity_seconds > (\d+)$/.exec(rule('SensorIngestStreamInactive').expr);
    expect(Number(inactive?.[1])).toBeGreaterThan(Number(DEFAULTS.INACTIVITY_WARN_SEC));
    expect(rule('SensorIngestQueueBacklog').expr).toBe('write_queue_length / write_queue_maxsize > 0.5');
  });

  it('has unit tests in alerts.test.yml for every alert, when it fires and when it does not, and for no other', () => {
    const text = readFileSync(ALERT_TESTS, 'utf8');
    expect(text).toMatch(/^rule_files:\n {2}- alerts\.yml$/m);
    const evals = [...text.matchAll(/- eval_time: (\S+)\n\s+alertname: (\S+)\n\s+exp_alerts:( \[\])?/g)].map(([, at, alert, none]) => ({ at, alert, fires: none === undefined }));
    expect(evals.length).toBeGreaterThanOrEqual(2 * EXPECTED.length);
    for (const alert of EXPECTED) {
      expect(evals.some((e) => e.alert === alert && e.fires), `${alert} has a test where it fires`).toBe(true);
      expect(evals.some((e) => e.alert === alert && !e.fires), `${alert} has a test where nothing fires`).toBe(true);
    }
    // promtool passes an eval of a misspelled alert that expects nothing: so every name must be real.
    for (const e of evals) expect(EXPECTED, `eval at ${e.at}`).toContain(e.alert);
  });
});
