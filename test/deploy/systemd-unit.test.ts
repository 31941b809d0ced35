import { readFileSync } from 'node:fs';
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
    expect(one('ExecStart')).toBe('/usr/bin/node --max-semi-space-size=4 --max-old-space-size=144 /opt/sensor-ingest/dist/main.js');
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
