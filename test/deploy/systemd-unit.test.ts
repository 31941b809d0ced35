import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config.js';
import { ROOT, tempDir } from '../helpers.js';

const UNIT = join(ROOT, 'deploy', 'sensor-ingest.service');

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => dir.cleanup());

/** `Key=value` lines of the unit, by key (repeated keys keep every value). */
function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) map.set(match[1] as string, [...(map.get(match[1] as string) ?? []), match[2] as string]);
  }
  return map;
}

describe('deploy/sensor-ingest.service', () => {
  const unit = directives(readFileSync(UNIT, 'utf8'));
  const one = (key: string) => unit.get(key)?.at(-1);

  it('is hardened and stops gracefully', () => {
    expect(one('Restart')).toBe('on-failure');
    expect(Number(one('StartLimitBurst'))).toBeGreaterThan(0);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('ReadWritePaths')?.split(' ')).toEqual(['/var/lib/sensor-ingest', '/var/log/sensor-ingest']);
    expect(unit.get('Environment')).toEqual(expect.arrayContaining(['DATA_DIR=/var/lib/sensor-ingest', 'LOG_DIR=/var/log/sensor-ingest']));
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(Number(DEFAULTS.SHUTDOWN_TIMEOUT_SEC));
    expect(one('EnvironmentFile')).toBe('/etc/sensor-ingest/sensor-ingest.env');
    expect(one('User')).toBe('sensor-ingest');
    // SPEC section 9: node directly, not through npm.
    expect(one('ExecStart')).toBe('/usr/bin/node --max-semi-space-size=4 /opt/sensor-ingest/dist/main.js');
  });

  it('passes systemd-analyze verify', (context) => {
    const probe = spawnSync('systemd-analyze', ['--version']);
    if (probe.error) {
      context.skip('systemd-analyze is not installed (Debian package systemd; .ci/run installs it)');
      return;
    }
    // The one allowed rewrite: ExecStart's binary path to this machine's node.
    const copy = join(dir.path, 'sensor-ingest.service');
    writeFileSync(copy, readFileSync(UNIT, 'utf8').replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
    const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    expect(result.stderr + result.stdout).toBe('');
    expect(result.status).toBe(0);
  });
});
