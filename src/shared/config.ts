/**
 * The one place that reads configuration. `loadConfig(env)` checks every
 * variable of SPEC section 2, reports every problem (name, value, accepted
 * form) at once, and returns one frozen object that the rest of the program
 * is handed. Nothing else reads `process.env`.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { NAME, NAME_RULE, nameFrom } from './names.js';
import { hideCredentials } from './redaction.js';

export type AckMode = 'queued' | 'durable';
export type CsvRotate = 'none' | 'daily';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** What Express's `trust proxy` setting takes. */
export type TrustProxy = boolean | number | string;

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly logDir: string;
  readonly logLevel: LogLevel;
  readonly streams: readonly string[];
  readonly writeQueueMaxSize: number;
  readonly queueWarnThreshold: number;
  readonly inactivityWarnSec: number;
  readonly writeRetries: number;
  readonly writeBackoffBaseSec: number;
  readonly writeBackoffMaxSec: number;
  readonly historyMax: number;
  readonly maxRequestBytes: number;
  readonly maxBatchRows: number;
  readonly ackMode: AckMode;
  readonly csvRotate: CsvRotate;
  readonly ingestToken: string | undefined;
  readonly readToken: string | undefined;
  readonly rateLimitPerMin: number;
  readonly trustProxy: TrustProxy | undefined;
  readonly shutdownTimeoutSec: number;
  readonly durableAckTimeoutSec: number;
  readonly commitIntervalMs: number;
  readonly idempotencyWindowSec: number;
  readonly idempotencyMaxKeys: number;
  readonly natsUrl: readonly string[] | undefined;
  readonly natsCreds: string | undefined;
  readonly natsSubjectPrefix: string;
  readonly natsStream: string;
  readonly natsReplicas: number;
  readonly siteId: string;
  readonly collectConsumer: string;
  /** SPEC section 11: most columns in one request and in one file's header. */
  readonly maxColumns: number;
  /** SPEC section 11: bytes of encoded rows the queue holds, beside its row count. */
  readonly writeQueueMaxBytes: number;
  /** SPEC section 11: a write or fsync unfinished after this counts as stalled (hung). */
  readonly writeTimeoutSec: number;
  /** SPEC section 12: below this free space on DATA_DIR's file system, WARN and /readyz 503 (0: never). */
  readonly diskMinFreeBytes: number;
  /** SPEC section 12: closed files whose newest row is older than this many days are removed; unset keeps them. */
  readonly retentionDays: number | undefined;
  /** SPEC section 12: the oldest closed files are removed while the stream files take more; unset keeps them. */
  readonly retentionMaxBytes: number | undefined;
  /** SPEC section 12: `gzip` compresses each closed file to `<file>.gz`; `none` keeps plain CSV. */
  readonly compressClosed: 'none' | 'gzip';
}

/** SPEC section 2's defaults, as the strings an operator would write. */
export const DEFAULTS = Object.freeze({
  PORT: '8888',
  HOST: '0.0.0.0',
  DATA_DIR: './data',
  LOG_DIR: './logs',
  LOG_LEVEL: 'info',
  STREAMS: 'data,data2,data3,data4',
  WRITE_QUEUE_MAXSIZE: '5000',
  QUEUE_WARN_THRESHOLD: '0.8',
  INACTIVITY_WARN_SEC: '120',
  WRITE_RETRIES: '3',
  WRITE_BACKOFF_BASE_SEC: '0.05',
  WRITE_BACKOFF_MAX_SEC: '5',
  HISTORY_MAX: '1000',
  MAX_REQUEST_BYTES: '1048576',
  MAX_BATCH_ROWS: '1000',
  ACK_MODE: 'queued',
  CSV_ROTATE: 'none',
  RATE_LIMIT_PER_MIN: '0',
  SHUTDOWN_TIMEOUT_SEC: '30',
  DURABLE_ACK_TIMEOUT_SEC: '10',
  COMMIT_INTERVAL_MS: '0',
  IDEMPOTENCY_WINDOW_SEC: '600',
  IDEMPOTENCY_MAX_KEYS: '100000',
  NATS_SUBJECT_PREFIX: 'sensors',
  NATS_STREAM: 'SENSORS',
  NATS_REPLICAS: '1',
  COLLECT_CONSUMER: 'sensor-ingest-collector',
  MAX_COLUMNS: '1024',
  WRITE_QUEUE_MAX_BYTES: '33554432',
  WRITE_TIMEOUT_SEC: '30',
  DISK_MIN_FREE_BYTES: '104857600',
  COMPRESS_CLOSED: 'none',
});

/** Variables whose values are secrets: never echoed in errors or logs. */
export const SECRET_VARIABLES: ReadonlySet<string> = new Set(['INGEST_TOKEN', 'READ_TOKEN']);

/**
 * Paths that the server answers itself, so a stream may not take them. Later
 * features (dashboard, line protocol, data download) claim some of these.
 */
export const RESERVED_STREAM_NAMES: ReadonlySet<string> = new Set([
  'healthz', 'livez', 'readyz', 'metrics', 'history', 'events', 'dashboard', 'streams', 'write', 'api',
]);

const NATS_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const WHOLE = /^\d+$/;
/** A plain decimal number, exponent allowed (`0.05`, `.5`, `1e1`). */
const DECIMAL = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/** setTimeout's largest delay, in seconds (Node clamps anything larger to 1 ms). */
const MAX_TIMER_SEC = 2_147_483;
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Thrown by `loadConfig` with one line per bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  /** The machine's host name, the default `SITE_ID`. */
  readonly hostname?: string;
  /** Directory that relative paths are resolved against. */
  readonly cwd?: string;
  /** Defaults that differ for another entry point (the collector's `PORT` is 8889). */
  readonly defaults?: Partial<Record<keyof typeof DEFAULTS, string>>;
  /** Whether this process can read a file (NATS_CREDS); the real file system unless a test says. */
  readonly canRead?: (path: string) => boolean;
}

function canReadFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Parses and checks the environment; throws `ConfigError` listing every problem. */
export function loadConfig(env: Env, options: LoadConfigOptions = {}): Config {
  const problems: string[] = [];
  const cwd = options.cwd ?? process.cwd();

  /** The raw value: an empty value means unset (SPEC section 9). */
  const raw = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const valueOrDefault = (name: keyof typeof DEFAULTS): string => raw(name) ?? options.defaults?.[name] ?? DEFAULTS[name];
  const fail = (name: string, accepted: string, value: string): undefined => {
    const shown = SECRET_VARIABLES.has(name) ? 'the value is not shown because it is a secret' : `got '${value}'`;
    problems.push(`${name} must be ${accepted}; ${shown}`);
    return undefined;
  };

  // Read again at every connect (a rotated file is picked up), but a missing one is a typo to catch now.
  const credsFile = (value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const path = resolve(cwd, value);
    if (raw('NATS_URL') === undefined) return path; // not used without NATS_URL
    return (options.canRead ?? canReadFile)(path) ? path : fail('NATS_CREDS', 'a NATS creds file this user can read', path);
  };

  const whole = (name: keyof typeof DEFAULTS, min: number, max: number): number => {
    const value = valueOrDefault(name);
    const n = WHOLE.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) fail(name, `a whole number from ${min} to ${max}`, value);
    return n;
  };
  const seconds = (name: keyof typeof DEFAULTS): number => {
    const value = valueOrDefault(name);
    const n = DECIMAL.test(value) ? Number(value) : NaN;
    if (!(n > 0 && n <= MAX_TIMER_SEC)) fail(name, `a number of seconds greater than 0 and at most ${MAX_TIMER_SEC}`, value);
    return n;
  };
  const oneOf = <T extends string>(name: keyof typeof DEFAULTS, allowed: readonly T[]): T => {
    const value = valueOrDefault(name);
    if (!(allowed as readonly string[]).includes(value)) fail(name, `one of ${allowed.join(', ')}`, value);
    return value as T;
  };
  const natsToken = (name: keyof typeof DEFAULTS): string => {
    const value = valueOrDefault(name);
    if (!NATS_TOKEN.test(value)) fail(name, '1 to 64 letters, digits, _ or -', value);
    return value;
  };
  /** A whole number that may be left unset (no default). */
  const optionalWhole = (name: string, min: number, max: number): number | undefined => {
    const value = raw(name);
    if (value === undefined) return undefined;
    const n = WHOLE.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) fail(name, `a whole number from ${min} to ${max}, or unset`, value);
    return n;
  };
  const secret = (name: string): string | undefined => {
    const value = raw(name);
    if (value !== undefined && !/^[\x21-\x7e]+$/.test(value)) fail(name, 'printable ASCII with no spaces', value);
    return value;
  };
  const path = (name: keyof typeof DEFAULTS): string => resolve(cwd, valueOrDefault(name));

  const streams = parseStreams(valueOrDefault('STREAMS'), fail);

  const threshold = valueOrDefault('QUEUE_WARN_THRESHOLD');
  const queueWarnThreshold = DECIMAL.test(threshold) ? Number(threshold) : NaN;
  if (!(queueWarnThreshold > 0 && queueWarnThreshold <= 1)) {
    fail('QUEUE_WARN_THRESHOLD', 'a fraction greater than 0 and at most 1', threshold);
  }

  const host = valueOrDefault('HOST');
  if (/\s/.test(host)) fail('HOST', 'an address or host name without spaces', host);

  const siteIdRaw = raw('SITE_ID');
  let siteId: string;
  if (siteIdRaw === undefined) {
    siteId = siteIdFromHostname(options.hostname ?? 'localhost');
  } else {
    siteId = siteIdRaw;
    if (!NAME.test(siteId)) fail('SITE_ID', NAME_RULE, siteIdRaw);
  }

  const config: Config = {
    port: whole('PORT', 0, 65535),
    host,
    dataDir: path('DATA_DIR'),
    logDir: path('LOG_DIR'),
    logLevel: oneOf('LOG_LEVEL', LOG_LEVELS),
    streams,
    writeQueueMaxSize: whole('WRITE_QUEUE_MAXSIZE', 1, 10_000_000),
    queueWarnThreshold,
    inactivityWarnSec: seconds('INACTIVITY_WARN_SEC'),
    writeRetries: whole('WRITE_RETRIES', 0, 1000),
    writeBackoffBaseSec: seconds('WRITE_BACKOFF_BASE_SEC'),
    writeBackoffMaxSec: seconds('WRITE_BACKOFF_MAX_SEC'),
    historyMax: whole('HISTORY_MAX', 1, 1_000_000),
    maxRequestBytes: whole('MAX_REQUEST_BYTES', 1, 1_073_741_824),
    maxBatchRows: whole('MAX_BATCH_ROWS', 1, 100_000),
    ackMode: oneOf('ACK_MODE', ['queued', 'durable'] as const),
    csvRotate: oneOf('CSV_ROTATE', ['none', 'daily'] as const),
    ingestToken: secret('INGEST_TOKEN'),
    readToken: secret('READ_TOKEN'),
    rateLimitPerMin: whole('RATE_LIMIT_PER_MIN', 0, 1_000_000),
    trustProxy: parseTrustProxy(raw('TRUST_PROXY'), fail),
    shutdownTimeoutSec: seconds('SHUTDOWN_TIMEOUT_SEC'),
    durableAckTimeoutSec: seconds('DURABLE_ACK_TIMEOUT_SEC'),
    commitIntervalMs: whole('COMMIT_INTERVAL_MS', 0, 60_000),
    idempotencyWindowSec: seconds('IDEMPOTENCY_WINDOW_SEC'),
    idempotencyMaxKeys: whole('IDEMPOTENCY_MAX_KEYS', 1, 10_000_000),
    natsUrl: parseNatsUrls(raw('NATS_URL'), fail),
    natsCreds: credsFile(raw('NATS_CREDS')),
    natsSubjectPrefix: natsToken('NATS_SUBJECT_PREFIX'),
    natsStream: natsToken('NATS_STREAM'),
    natsReplicas: whole('NATS_REPLICAS', 1, 5),
    siteId,
    collectConsumer: natsToken('COLLECT_CONSUMER'),
    maxColumns: whole('MAX_COLUMNS', 1, 100_000),
    writeQueueMaxBytes: whole('WRITE_QUEUE_MAX_BYTES', 1024, 17_179_869_184),
    writeTimeoutSec: seconds('WRITE_TIMEOUT_SEC'),
    diskMinFreeBytes: whole('DISK_MIN_FREE_BYTES', 0, Number.MAX_SAFE_INTEGER),
    retentionDays: optionalWhole('RETENTION_DAYS', 1, 36_500),
    retentionMaxBytes: optionalWhole('RETENTION_MAX_BYTES', 1, Number.MAX_SAFE_INTEGER),
    compressClosed: oneOf('COMPRESS_CLOSED', ['none', 'gzip'] as const),
  };

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

type Fail = (name: string, accepted: string, value: string) => undefined;

function parseStreams(value: string, fail: Fail): readonly string[] {
  const names = value.split(',').map((name) => name.trim());
  const accepted = `a comma list of names of ${NAME_RULE}`;
  const bad = names.find((name) => !NAME.test(name));
  if (bad !== undefined) {
    fail('STREAMS', `${accepted} (bad name '${bad}')`, value);
  } else if (new Set(names).size !== names.length) {
    fail('STREAMS', `${accepted}, each named once`, value);
  } else {
    const reserved = names.find((name) => RESERVED_STREAM_NAMES.has(name));
    if (reserved !== undefined) {
      fail('STREAMS', `${accepted}, none of them a path the server owns (${[...RESERVED_STREAM_NAMES].join(', ')})`, value);
    }
  }
  return Object.freeze(names);
}

/** Express's `trust proxy`: true/false, a hop count, or a comma list of addresses, subnets and names. */
function parseTrustProxy(value: string | undefined, fail: Fail): TrustProxy | undefined {
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (WHOLE.test(value)) return Number(value);
  const items = value.split(',').map((item) => item.trim());
  const valid = items.every((item) => {
    if (PROXY_NAMES.has(item)) return true;
    const [address = '', prefix, ...rest] = item.split('/');
    if (rest.length > 0 || isIP(address) === 0) return false;
    if (prefix === undefined) return true;
    if (isIP(prefix) === isIP(address)) return true; // a netmask: 10.0.0.0/255.0.0.0
    const bits = WHOLE.test(prefix) ? Number(prefix) : NaN;
    return bits <= (isIP(address) === 4 ? 32 : 128);
  });
  if (!valid) {
    return fail('TRUST_PROXY', 'true, false, a hop count, or a comma list of addresses, subnets (10.0.0.0/8) and loopback, linklocal, uniquelocal', value);
  }
  return items.join(',');
}

function parseNatsUrls(value: string | undefined, fail: Fail): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const urls = value.split(',').map((url) => url.trim());
  const valid = urls.every((url) => {
    try {
      const parsed = new URL(url);
      return (parsed.protocol === 'nats:' || parsed.protocol === 'tls:') && parsed.hostname !== '';
    } catch {
      return false;
    }
  });
  if (!valid) return fail('NATS_URL', 'a comma list of nats://[user:pass@]host:port addresses', hideCredentials(value));
  return Object.freeze(urls);
}

/** SPEC section 10: the host name, lower-cased, with characters outside [a-z0-9_-] as '-'. */
export function siteIdFromHostname(hostname: string): string {
  return nameFrom(hostname, 'localhost');
}
