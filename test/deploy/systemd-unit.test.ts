import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/shared/config.js';
import { ROOT } from '../support/paths.js';
import { NO_SYSTEMD_ANALYZE, directives, verifyUnit } from '../support/systemd-unit.js';

const UNIT = join(ROOT, 'deploy', 'sensor-ingest.service');

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
    expect(one('ExecStart')).toBe('/usr/bin/node --max-semi-space-size=2 --max-old-space-size=128 --no-maglev /opt/sensor-ingest/dist/main.js');
  });

  it('runs node with the flags of npm start, as npm run collect, the collector unit and the PM2 config do', () => {
    // The memory budget (SPEC section 11, test/e2e/memory.test.ts) is measured with these flags.
    const flagsOf = (command: string | undefined, entry: string): string[] => {
      const words = command?.split(/\s+/) ?? [];
      return words.slice(1, words.indexOf(entry));
    };
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const start = flagsOf(scripts.start, 'dist/main.js');
    expect(start).toEqual(['--max-semi-space-size=2', '--max-old-space-size=128', '--no-maglev']);
    expect(flagsOf(one('ExecStart'), '/opt/sensor-ingest/dist/main.js')).toEqual(start);
    expect(flagsOf(scripts.collect, 'dist/collect.js')).toEqual(start);
    const collectUnit = directives(readFileSync(join(ROOT, 'deploy', 'sensor-ingest-collect.service'), 'utf8'));
    expect(flagsOf(collectUnit.get('ExecStart')?.at(-1), '/opt/sensor-ingest/dist/collect.js')).toEqual(start);
    const pm2 = createRequire(import.meta.url)(join(ROOT, 'ecosystem.config.cjs')) as { apps: Array<{ node_args: string[] }> };
    expect(pm2.apps.map((app) => app.node_args)).toEqual([start]);
  });

  it('passes systemd-analyze verify', (context) => {
    const verified = verifyUnit(UNIT);
    if (verified === null) {
      context.skip(NO_SYSTEMD_ANALYZE);
      return;
    }
    expect(verified.output).toBe('');
    expect(verified.status).toBe(0);
  });
});
