import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, loadConfig, siteIdFromHostname } from '../../src/shared/config.js';
import { redactConfig } from '../../src/shared/redaction.js';
import { testDir } from '../support/temp-dir.js';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env, { hostname: 'pi', cwd: '/srv' });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it("takes another entry point's defaults (the collector's PORT 8889), which a set variable still overrides", () => {
    expect(loadConfig({}, { defaults: { PORT: '8889' } }).port).toBe(8889);
    expect(loadConfig({ PORT: '9000' }, { defaults: { PORT: '8889' } }).port).toBe(9000);
    expect(loadConfig({}).port).toBe(8888);
  });

  it('gives SPEC section 2 defaults, frozen, with paths resolved', () => {
    const config = loadConfig({}, { hostname: 'Sensor.Pi', cwd: '/srv/app' });
    expect(config).toMatchObject({
      port: 8888,
      host: '0.0.0.0',
      dataDir: '/srv/app/data',
      logDir: '/srv/app/logs',
      logLevel: 'info',
      streams: ['data', 'data2', 'data3', 'data4'],
      writeQueueMaxSize: 5000,
      queueWarnThreshold: 0.8,
      inactivityWarnSec: 120,
      writeRetries: 3,
      writeBackoffBaseSec: 0.05,
      writeBackoffMaxSec: 5,
      historyMax: 1000,
      maxRequestBytes: 1048576,
      maxBatchRows: 1000,
      ackMode: 'queued',
      csvRotate: 'none',
      ingestToken: undefined,
      readToken: undefined,
      rateLimitPerMin: 0,
      trustProxy: undefined,
      shutdownTimeoutSec: 30,
      durableAckTimeoutSec: 10,
      commitIntervalMs: 0,
      idempotencyWindowSec: 600,
      idempotencyMaxKeys: 100000,
      natsUrl: undefined,
      natsSubjectPrefix: 'sensors',
      natsStream: 'SENSORS',
      natsReplicas: 1,
      siteId: 'sensor-pi',
      collectConsumer: 'sensor-ingest-collector',
      maxColumns: 1024,
      writeQueueMaxBytes: 33554432,
      writeTimeoutSec: 30,
      diskMinFreeBytes: 104857600,
      retentionDays: undefined,
      retentionMaxBytes: undefined,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.keys(DEFAULTS)).toContain('WRITE_QUEUE_MAXSIZE');
  });

  it('takes every variable', () => {
    const config = loadConfig(
      {
        PORT: '9000',
        HOST: '127.0.0.1',
        DATA_DIR: '/var/lib/si',
        LOG_LEVEL: 'debug',
        STREAMS: 'temp, hum_1,door-2',
        WRITE_QUEUE_MAXSIZE: '10',
        QUEUE_WARN_THRESHOLD: '1',
        WRITE_RETRIES: '0',
        WRITE_BACKOFF_BASE_SEC: '.5',
        ACK_MODE: 'durable',
        CSV_ROTATE: 'daily',
        INGEST_TOKEN: 's3cret',
        RATE_LIMIT_PER_MIN: '60',
        TRUST_PROXY: 'loopback, 10.0.0.0/8',
        COMMIT_INTERVAL_MS: '20',
        NATS_URL: 'nats://u:p@a:4222,nats://b:4222',
        NATS_REPLICAS: '3',
        SITE_ID: 'site_1',
      },
      { cwd: '/' },
    );
    expect(config).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      dataDir: '/var/lib/si',
      logLevel: 'debug',
      streams: ['temp', 'hum_1', 'door-2'],
      writeQueueMaxSize: 10,
      queueWarnThreshold: 1,
      writeRetries: 0,
      writeBackoffBaseSec: 0.5,
      ackMode: 'durable',
      csvRotate: 'daily',
      ingestToken: 's3cret',
      rateLimitPerMin: 60,
      trustProxy: 'loopback,10.0.0.0/8',
      commitIntervalMs: 20,
      natsUrl: ['nats://u:p@a:4222', 'nats://b:4222'],
      natsReplicas: 3,
      siteId: 'site_1',
    });
  });

  it('takes seconds with an exponent', () => {
    expect(loadConfig({ SHUTDOWN_TIMEOUT_SEC: '1e1', WRITE_BACKOFF_BASE_SEC: '5e-2' })).toMatchObject({ shutdownTimeoutSec: 10, writeBackoffBaseSec: 0.05 });
  });

  it('treats an empty value as unset', () => {
    expect(loadConfig({ PORT: '', ACK_MODE: '  ', INGEST_TOKEN: '' }).port).toBe(8888);
    expect(loadConfig({ INGEST_TOKEN: '' }).ingestToken).toBeUndefined();
  });

  it.each([
    ['true', true],
    ['false', false],
    ['2', 2],
    ['127.0.0.1', '127.0.0.1'],
    ['uniquelocal,::1/128', 'uniquelocal,::1/128'],
    ['10.0.0.0/255.0.0.0', '10.0.0.0/255.0.0.0'],
  ])('TRUST_PROXY=%s', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toEqual(expected);
  });

  it('names the variable, the value and the accepted form', () => {
    expect(problemsOf({ PORT: '70000' })).toEqual(["PORT must be a whole number from 0 to 65535; got '70000'"]);
    expect(problemsOf({ MAX_BATCH_ROWS: '0' })).toEqual(["MAX_BATCH_ROWS must be a whole number from 1 to 100000; got '0'"]);
    expect(problemsOf({ WRITE_QUEUE_MAXSIZE: '1.5' })).toEqual([
      "WRITE_QUEUE_MAXSIZE must be a whole number from 1 to 10000000; got '1.5'",
    ]);
    expect(problemsOf({ SHUTDOWN_TIMEOUT_SEC: '0' })).toEqual([
      "SHUTDOWN_TIMEOUT_SEC must be a number of seconds greater than 0 and at most 2147483; got '0'",
    ]);
    expect(problemsOf({ QUEUE_WARN_THRESHOLD: '1.2' })).toEqual([
      "QUEUE_WARN_THRESHOLD must be a fraction greater than 0 and at most 1; got '1.2'",
    ]);
    expect(problemsOf({ ACK_MODE: 'fast' })).toEqual(["ACK_MODE must be one of queued, durable; got 'fast'"]);
    expect(problemsOf({ CSV_ROTATE: 'hourly' })).toEqual(["CSV_ROTATE must be one of none, daily; got 'hourly'"]);
    expect(problemsOf({ LOG_LEVEL: 'loud' })).toEqual([
      "LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got 'loud'",
    ]);
    expect(problemsOf({ STREAMS: 'data,Bad' })).toEqual([
      "STREAMS must be a comma list of names of 1 to 64 characters from a-z, 0-9, _ and - (bad name 'Bad'); got 'data,Bad'",
    ]);
    expect(problemsOf({ STREAMS: 'a,a' })[0]).toMatch(/^STREAMS must be .*each named once; got 'a,a'$/);
    expect(problemsOf({ STREAMS: 'data,metrics' })[0]).toMatch(/^STREAMS must be .*none of them a path the server owns/);
    expect(problemsOf({ TRUST_PROXY: 'maybe' })[0]).toMatch(/^TRUST_PROXY must be true, false, a hop count, .*; got 'maybe'$/);
    expect(problemsOf({ SITE_ID: 'Site One' })).toEqual([
      "SITE_ID must be 1 to 64 characters from a-z, 0-9, _ and -; got 'Site One'",
    ]);
    expect(problemsOf({ NATS_REPLICAS: '4x' })).toEqual(["NATS_REPLICAS must be a whole number from 1 to 5; got '4x'"]);
    expect(problemsOf({ RATE_LIMIT_PER_MIN: '-1' })).toEqual([
      "RATE_LIMIT_PER_MIN must be a whole number from 0 to 1000000; got '-1'",
    ]);
    expect(problemsOf({ MAX_COLUMNS: '0' })).toEqual(["MAX_COLUMNS must be a whole number from 1 to 100000; got '0'"]);
    expect(problemsOf({ WRITE_QUEUE_MAX_BYTES: '32M' })).toEqual([
      "WRITE_QUEUE_MAX_BYTES must be a whole number from 1024 to 17179869184; got '32M'",
    ]);
    expect(problemsOf({ WRITE_TIMEOUT_SEC: '-5' })).toEqual([
      "WRITE_TIMEOUT_SEC must be a number of seconds greater than 0 and at most 2147483; got '-5'",
    ]);
  });

  it('reports every bad variable, one line each', () => {
    expect(problemsOf({ PORT: 'x', HISTORY_MAX: '0', WRITE_RETRIES: '-2' })).toHaveLength(3);
  });

  it('never echoes a secret', () => {
    const [problem] = problemsOf({ INGEST_TOKEN: 'has space', NATS_URL: 'http://user:hunter2@x' });
    expect(problem).toBe('INGEST_TOKEN must be printable ASCII with no spaces; the value is not shown because it is a secret');
    expect(problemsOf({ NATS_URL: 'http://user:hunter2@x' }).join()).not.toContain('hunter2');
  });

  it('takes NATS_CREDS only as a file this user can read, resolved against the working directory', () => {
    const dir = testDir('creds-');
    writeFileSync(join(dir, 'edge.creds'), '-----BEGIN NATS USER JWT-----\n');
    expect(loadConfig({ NATS_URL: 'nats://h:4222', NATS_CREDS: 'edge.creds' }, { cwd: dir }).natsCreds).toBe(join(dir, 'edge.creds'));
    expect(problemsOf({ NATS_URL: 'nats://h:4222', NATS_CREDS: 'missing.creds' })).toEqual(["NATS_CREDS must be a NATS creds file this user can read; got '/srv/missing.creds'"]);
    // A folder is not a creds file.
    expect(() => loadConfig({ NATS_URL: 'nats://h:4222', NATS_CREDS: dir })).toThrow(ConfigError);
    // Without NATS_URL it is never read, so never checked.
    expect(loadConfig({ NATS_CREDS: 'missing.creds' }, { cwd: dir }).natsCreds).toBe(join(dir, 'missing.creds'));
  });

  it('shows a bad NATS_URL with its credentials taken out, so a mistyped host can be seen', () => {
    expect(problemsOf({ NATS_URL: 'nats://user:hunter2@nats-1:4222,http://nats-2:4222' })).toEqual([
      "NATS_URL must be a comma list of nats://[user:pass@]host:port addresses; got 'nats://[redacted]@nats-1:4222,http://nats-2:4222'",
    ]);
    // Even where the address does not parse, and where the password holds '@' or '/'.
    // A comma or a line break inside the password too.
    for (const value of ['user:hunter2@nats-1', 'http://u:hun@ter/2@h:4222', 'nats//tok:hunter2@h', 'nats://:hunter2@', 'http://user:hun,ter2@h', 'http://user:hun\nter2@h', 'nats://a:4222,http://u:hun\u2028ter2@h']) {
      const [shown] = problemsOf({ NATS_URL: value });
      expect(shown, value).toMatch(/\[redacted\]@/);
      expect(shown, value).not.toMatch(/hun/);
    }
  });

  it('redacts secrets for the start-up log', () => {
    const config = loadConfig({ INGEST_TOKEN: 'tok1', READ_TOKEN: 'tok2', NATS_URL: 'nats://me:pw@host:4222' });
    const shown = JSON.stringify(redactConfig(config));
    expect(shown).not.toMatch(/tok1|tok2|pw@/);
    expect(shown).toContain('nats://[redacted]@host:4222');
    // new URL drops a line break in the password and takes the URL; the log must still hide it.
    const broken = loadConfig({ NATS_URL: 'nats://user:pa\nss@host:4222,nats://other:4222' });
    expect(redactConfig(broken).natsUrl).toEqual(['nats://[redacted]@host:4222', 'nats://other:4222']);
  });

  it('derives SITE_ID from the host name', () => {
    expect(siteIdFromHostname('Pi.Local')).toBe('pi-local');
    expect(siteIdFromHostname('')).toBe('localhost');
  });
});
