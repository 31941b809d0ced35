/**
 * deploy/sensor-ingest-collect.service and its settings file: the
 * collector's entry point, port and directories, the same hardening as
 * deploy/sensor-ingest.service, `systemd-analyze verify`, and a settings
 * file whose every variable is a documented one that loads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig } from '../../src/shared/config.js';
import { ROOT } from '../support/paths.js';
import { NO_SYSTEMD_ANALYZE, directives, verifyUnit } from '../support/systemd-unit.js';

const UNIT = join(ROOT, 'deploy', 'sensor-ingest-collect.service');
const INGEST_UNIT = join(ROOT, 'deploy', 'sensor-ingest.service');
const ENV_FILE = join(ROOT, 'deploy', 'sensor-ingest-collect.env');

/** `NAME=value` assignments of an environment file, in order. */
function assignments(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .map((line) => /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => [match[1] as string, match[2] as string]);
}

describe('deploy/sensor-ingest-collect.service', () => {
  const unit = directives(readFileSync(UNIT, 'utf8'));
  const one = (key: string) => unit.get(key)?.at(-1);

  it('runs the compiled collector on port 8889 with its own directories and settings file', () => {
    // SPEC section 9: node directly, not through npm.
    expect(one('ExecStart')).toBe('/usr/bin/node --max-semi-space-size=2 --max-old-space-size=128 --no-maglev /opt/sensor-ingest/dist/collect.js');
    expect(unit.get('Environment')).toEqual(
      expect.arrayContaining(['PORT=8889', 'DATA_DIR=/var/lib/sensor-ingest-collect', 'LOG_DIR=/var/log/sensor-ingest-collect']),
    );
    expect(one('EnvironmentFile')).toBe('/etc/sensor-ingest/sensor-ingest-collect.env');
    expect(one('ReadWritePaths')?.split(' ')).toEqual(['/var/lib/sensor-ingest-collect', '/var/log/sensor-ingest-collect']);
    expect(one('StateDirectory')).toBe('sensor-ingest-collect');
    expect(one('LogsDirectory')).toBe('sensor-ingest-collect');
    expect(one('User')).toBe('sensor-ingest');
  });

  it('stops gracefully and does not restart on a bad configuration', () => {
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe('78');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('TimeoutStopSec')).toBe('45');
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(Number(DEFAULTS.SHUTDOWN_TIMEOUT_SEC));
  });

  it('is hardened as the ingest unit is: every other directive of sensor-ingest.service, with the same value', () => {
    const ingest = directives(readFileSync(INGEST_UNIT, 'utf8'));
    // The ones that name the program, its settings and its directories, or order its start.
    const own = new Set(['Description', 'After', 'ExecStart', 'Environment', 'EnvironmentFile', 'ReadWritePaths', 'StateDirectory', 'LogsDirectory']);
    const shared = [...ingest.keys()].filter((key) => !own.has(key));
    expect(shared).toEqual(expect.arrayContaining(['NoNewPrivileges', 'ProtectSystem', 'PrivateTmp', 'CapabilityBoundingSet', 'SystemCallArchitectures']));
    for (const key of shared) expect({ key, values: unit.get(key) }).toEqual({ key, values: ingest.get(key) });
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

describe('deploy/sensor-ingest-collect.env', () => {
  const text = readFileSync(ENV_FILE, 'utf8');
  const pairs = assignments(text);

  it('sets only variables docs/configuration.md documents, each once', () => {
    const configuration = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const documented = new Set([...configuration.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((match) => match[1]));
    const names = pairs.map(([name]) => name);
    expect(names.filter((name) => !documented.has(name))).toEqual([]);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['NATS_URL', 'NATS_CREDS', 'NATS_STREAM', 'NATS_SUBJECT_PREFIX', 'COLLECT_CONSUMER', 'PORT']));
  });

  it('documents DATA_DIR without emptying it: an empty value would mean ./data, which the unit cannot write', () => {
    expect(pairs.map(([name]) => name)).not.toContain('DATA_DIR');
    expect(text).toContain('#DATA_DIR=/var/lib/sensor-ingest-collect');
  });

  it('loads, over the unit\'s Environment= lines, into the collector\'s settings', () => {
    const unit = directives(readFileSync(UNIT, 'utf8'));
    // systemd: EnvironmentFile= values override Environment= ones.
    const env: Record<string, string> = {};
    for (const line of unit.get('Environment') ?? []) {
      const at = line.indexOf('=');
      env[line.slice(0, at)] = line.slice(at + 1);
    }
    for (const [name, value] of pairs) env[name] = value;
    const config = loadConfig(env, { hostname: 'central', cwd: '/opt/sensor-ingest' });
    expect(config.port).toBe(8889);
    expect(config.dataDir).toBe('/var/lib/sensor-ingest-collect');
    expect(config.logDir).toBe('/var/log/sensor-ingest-collect');
    expect(config.natsUrl).toEqual(['nats://127.0.0.1:4222']);
    expect(config.natsCreds).toBeUndefined();
    expect(config.natsStream).toBe(DEFAULTS.NATS_STREAM);
    expect(config.natsSubjectPrefix).toBe(DEFAULTS.NATS_SUBJECT_PREFIX);
    expect(config.collectConsumer).toBe(DEFAULTS.COLLECT_CONSUMER);
  });
});
