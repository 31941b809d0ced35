/** Reading and checking the systemd units in deploy/. */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { testDir } from './temp-dir.js';

/** `Key=value` lines of a unit, by key (repeated keys keep every value). */
export function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) map.set(match[1] as string, [...(map.get(match[1] as string) ?? []), match[2] as string]);
  }
  return map;
}

export const NO_SYSTEMD_ANALYZE = 'systemd-analyze is not installed (Debian package systemd; .ci/run installs it)';

/**
 * In a test: `systemd-analyze verify` on a copy of `unit` in a temp dir of
 * the test's, with the one allowed rewrite: ExecStart's /usr/bin/node to this
 * machine's node (verify checks that the binary exists). Null where
 * systemd-analyze is not installed.
 */
export function verifyUnit(unit: string): { output: string; status: number | null } | null {
  if (spawnSync('systemd-analyze', ['--version']).error) return null;
  const copy = join(testDir('sensor-ingest-unit-'), basename(unit));
  writeFileSync(copy, readFileSync(unit, 'utf8').replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
  const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
  return { output: result.stderr + result.stdout, status: result.status };
}
