/**
 * What the tests of deploy/prometheus/ and deploy/grafana/ share: where the
 * files are, the alerting rules read out of alerts.yml, the PromQL
 * expressions of the rules and the dashboard, the metric names in an
 * expression, and promtool (skipped where it cannot be had, never under CI).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'vitest';
import { ROOT } from '../support/paths.js';

export const ALERTS = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
export const ALERT_TESTS = join(ROOT, 'deploy', 'prometheus', 'alerts.test.yml');
export const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'sensor-ingest.json');

const NO_PROMTOOL = 'promtool is not installed (Debian package prometheus; .ci/run installs it)';

/**
 * First line of a test that runs promtool: skips the test when it is missing,
 * except under CI, where a missing promtool is an error (.ci/run installs it).
 */
export function requirePromtool(context: Pick<TestContext, 'skip'>): string {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return 'promtool';
  if (process.env.CI) throw new Error(`${NO_PROMTOOL}, but CI is set: CI must run the promtool checks`);
  return context.skip(NO_PROMTOOL);
}

/** Runs promtool with `args`; its exit status and stdout and stderr together. */
export function promtool(args: string[], cwd = ROOT): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

// ---------------------------------------------------------------- alerts.yml

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string | undefined;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

const KEY_LINE = /^(\s*)(- )?([A-Za-z_]\w*):(?:\s+(.*))?$/;
const indentOf = (line: string): number => line.length - line.trimStart().length;

/**
 * A key's value: its inline text and the lines after it indented deeper
 * (a block scalar `|`/`>`, a plain or quoted scalar folded over lines); an
 * empty inline value followed by a key line (past comments) opens a
 * mapping (value '').
 * Returns the value and the index of the first line after it.
 */
function scalar(lines: readonly string[], at: number, indent: number, inline: string): { value: string; next: number } {
  let next = at + 1;
  const following: string[] = [];
  while (next < lines.length) {
    const line = lines[next] ?? '';
    if (line.trim() !== '' && indentOf(line) <= indent) break;
    following.push(line);
    next++;
  }
  while (following.length > 0 && following.at(-1)?.trim() === '') following.pop();
  next = at + 1 + following.length;
  const firstContent = following.find((line) => !/^\s*(#|$)/.test(line));
  if (inline === '' && (firstContent === undefined || KEY_LINE.test(firstContent))) return { value: '', next: at + 1 };
  if (/^[|>][-+]?$/.test(inline)) {
    const body = following.map((line) => line.trim());
    return { value: (inline.startsWith('|') ? body.join('\n') : body.join(' ')).trim(), next };
  }
  const folded = [inline, ...following.map((line) => line.trim())].filter((part) => part !== '').join(' ');
  if (folded.startsWith('"')) return { value: JSON.parse(folded) as string, next };
  if (folded.startsWith("'")) return { value: folded.slice(1, -1).replaceAll("''", "'"), next };
  return { value: folded.replace(/\s+#.*$/, ''), next };
}

/**
 * The alerting rules of a rules file, read line by line: enough YAML for
 * the block style alerts.yml is written in (promtool check rules is what
 * proves the file is valid YAML and valid rules; the tests compare counts).
 */
export function alertRules(text: string): AlertRule[] {
  const lines = text.split('\n').map((line) => line.trimEnd());
  const rules: Array<{ alert: string; expr: string; for: string | undefined; labels: Record<string, string>; annotations: Record<string, string> }> = [];
  let section: { name: 'labels' | 'annotations'; indent: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    const match = KEY_LINE.exec(line);
    if (match === null) continue;
    const indent = (match[1] ?? '').length + (match[2] === undefined ? 0 : 2);
    const key = match[3] ?? '';
    const { value, next } = scalar(lines, i, indent, match[4] ?? '');
    i = next - 1;
    if (section !== undefined && indent <= section.indent) section = undefined;
    if (key === 'alert') {
      rules.push({ alert: value, expr: '', for: undefined, labels: {}, annotations: {} });
      continue;
    }
    const rule = rules.at(-1);
    if (rule === undefined) continue;
    if (key === 'labels' || key === 'annotations') section = { name: key, indent };
    else if (section !== undefined) rule[section.name][key] = value;
    else if (key === 'expr') rule.expr = value;
    else if (key === 'for') rule.for = value;
  }
  return rules;
}

export const readAlertRules = (): AlertRule[] => alertRules(readFileSync(ALERTS, 'utf8'));

// ---------------------------------------------------------------- the dashboard

export interface DashboardTarget {
  readonly expr?: string;
  readonly refId?: string;
  readonly datasource?: { type?: string; uid?: string };
}

export interface DashboardPanel {
  readonly id?: number;
  readonly type?: string;
  readonly title?: string;
  readonly datasource?: { type?: string; uid?: string } | null;
  readonly gridPos?: { h: number; w: number; x: number; y: number };
  readonly targets?: DashboardTarget[];
  readonly panels?: DashboardPanel[];
}

export interface DashboardVariable {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { query?: string };
  readonly datasource?: { type?: string; uid?: string };
}

export interface Dashboard {
  readonly uid?: string;
  readonly title?: string;
  readonly schemaVersion?: number;
  readonly __inputs?: Array<{ name: string; type: string; pluginId: string }>;
  readonly panels?: DashboardPanel[];
  readonly templating?: { list?: DashboardVariable[] };
}

export const readDashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every panel, those inside collapsed rows too. */
export function allPanels(dashboard: Dashboard): DashboardPanel[] {
  return (dashboard.panels ?? []).flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

/** A query variable's query text. */
export function variableQuery(variable: DashboardVariable): string {
  return typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
}

/**
 * The PromQL of the dashboard: every panel target's `expr`, and the series
 * selector inside each query variable's `label_values(<selector>, <label>)`.
 */
export function dashboardExprs(dashboard: Dashboard): Array<{ where: string; expr: string }> {
  const exprs: Array<{ where: string; expr: string }> = [];
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      if (target.expr !== undefined) exprs.push({ where: `panel "${panel.title ?? panel.id}" ${target.refId ?? ''}`.trim(), expr: target.expr });
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query = variableQuery(variable);
    const labelValues = /^\s*label_values\(\s*(.+?)\s*,\s*[A-Za-z_]\w*\s*\)\s*$/.exec(query);
    if (labelValues !== null) exprs.push({ where: `variable ${variable.name}`, expr: labelValues[1] ?? '' });
    else if (!/^\s*label_values\(\s*[A-Za-z_]\w*\s*\)\s*$/.test(query)) exprs.push({ where: `variable ${variable.name}`, expr: query });
  }
  return exprs;
}

// ---------------------------------------------------------------- PromQL

/** PromQL's keywords and binary operators that look like names. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression (or a Grafana one, with `$vars`)
 * selects: what is left once strings, Grafana variables, label matchers
 * `{…}`, ranges `[…]`, label lists after by/without/on/ignoring/group_*,
 * numbers and durations, functions and aggregations (a name before `(`)
 * and keywords are taken out. Sorted, each once.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, name = '', call] = match;
    if (call !== undefined) continue;
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

/**
 * The label names an expression groups or matches by: the lists after
 * by/without/on/ignoring/group_* and the names in `{…}` matchers. Sorted,
 * each once.
 */
export function labelNames(expr: string): string[] {
  const stripped = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/\$\{[^}]*\}/g, ' ');
  const names = new Set<string>();
  for (const [, list = ''] of stripped.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/gi)) {
    for (const name of list.split(',')) if (name.trim() !== '') names.add(name.trim());
  }
  for (const [, matchers = ''] of stripped.matchAll(/\{([^}]*)\}/g)) {
    for (const [, name = ''] of matchers.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) names.add(name);
  }
  return [...names].sort();
}

/** The metric families of a Prometheus text exposition: name → type, from its `# TYPE` lines. */
export function metricFamilies(exposition: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(match[1] ?? '', match[2] ?? '');
  return families;
}

/**
 * Whether `name` is exposed: a family of that name, or a histogram's (or
 * summary's) `_bucket`, `_sum` or `_count` series.
 */
export function exposes(families: ReadonlyMap<string, string>, name: string): boolean {
  if (families.has(name)) return true;
  const series = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (series === null) return false;
  const type = families.get(series[1] ?? '');
  return type === 'histogram' || (type === 'summary' && series[2] !== 'bucket');
}
