/**
 * What the forwarder and the collector share about NATS: how to connect
 * (SPEC section 10's variables), and the JetStream stream they both use,
 * created by whichever side finds it missing and never changed if present.
 */
import { readFileSync } from 'node:fs';
import { type JetStreamManager, RetentionPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect, credsAuthenticator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { safeMessage } from '../shared/redaction.js';
import type { Config } from '../shared/config.js';

export type NatsConfig = Pick<Config, 'natsUrl' | 'natsCreds' | 'natsSubjectPrefix' | 'natsStream' | 'natsReplicas'>;

/** SPEC section 10: JetStream drops a message whose id it saw within this window. */
export const DUPLICATE_WINDOW_MS = 10 * 60 * 1000;

/**
 * Connects, and keeps reconnecting for ever: NATS may be down when the
 * server starts, or go away for hours. The caller watches `status()`.
 */
export function connectNats(config: NatsConfig, name: string): Promise<NatsConnection> {
  const creds = config.natsCreds;
  const { servers, user, pass } = splitCredentials(config.natsUrl ?? []);
  return connect({
    servers,
    name,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // A creds file being rotated, or a user being set up, must not end the connection for good.
    ignoreAuthErrorAbort: true,
    // An Error (with its stack) per request only to improve traces costs ingest CPU on a Pi.
    noAsyncTraces: true,
    ...(user === undefined ? {} : { user, pass: pass ?? '' }),
    ...(creds === undefined ? {} : { authenticator: credsAuthenticator(() => readFileSync(creds)) }),
  });
}

/**
 * `nats://user:pass@host:port` as the client wants it: the servers without
 * the credentials (it would not send them), and the user and password apart.
 */
export function splitCredentials(urls: readonly string[]): { servers: string[]; user?: string; pass?: string } {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = urls.map((url) => {
    const parsed = new URL(url);
    if (parsed.username !== '') {
      user = decodeURIComponent(parsed.username);
      pass = decodeURIComponent(parsed.password);
    }
    return `${parsed.protocol}//${parsed.host}`;
  });
  return { servers, ...(user === undefined ? {} : { user, pass }) };
}

/** What connectAndFollow tells its caller, and what it logs a drop as. */
export interface ConnectionWatch {
  /** Still wanted: checked between attempts, and once connected (a close may have come meanwhile). */
  readonly stillWanted: () => boolean;
  /** True once connected and at each reconnect, false at each drop. */
  readonly onChange: (connected: boolean) => void;
  /** The WARN at a drop. */
  readonly dropMessage: string;
}

/**
 * Connects as connectUntilDone does, logging every 10th failed attempt as an
 * ERROR and the connection as an INFO, then follows it: a WARN at each drop,
 * an INFO at each reconnect. Undefined if no longer wanted first.
 */
export async function connectAndFollow(config: NatsConfig, name: string, log: Logger, watch: ConnectionWatch): Promise<NatsConnection | undefined> {
  const nc = await connectUntilDone(config, name, watch.stillWanted, (error, attempt) => {
    if (attempt % 10 === 0) log.error({ err: safeMessage(error), attempt }, 'cannot connect to NATS; trying again');
  });
  if (nc === undefined) return undefined;
  if (!watch.stillWanted()) {
    await nc.close();
    return undefined;
  }
  watch.onChange(true);
  log.info({ server: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        watch.onChange(false);
        log.warn(watch.dropMessage);
      } else if (status.type === 'reconnect') {
        watch.onChange(true);
        log.info({ server: status.server }, 'reconnected to NATS');
      }
    }
  })();
  return nc;
}

/** Connects, trying again every few seconds for as long as `stillWanted()` (a bad password, a TLS error). */
async function connectUntilDone(config: NatsConfig, name: string, stillWanted: () => boolean, onError: (error: unknown, attempt: number) => void): Promise<NatsConnection | undefined> {
  for (let attempt = 0; stillWanted(); attempt++) {
    try {
      return await connectNats(config, name);
    } catch (error) {
      onError(error, attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5))));
    }
  }
  return undefined;
}

/** `<prefix>.<site>.<stream>` */
export function subjectOf(prefix: string, site: string, stream: string): string {
  return `${prefix}.${site}.${stream}`;
}

/** Creates the stream when it is missing; leaves one that exists as it is. */
export async function ensureStream(jsm: JetStreamManager, config: NatsConfig): Promise<'created' | 'present'> {
  try {
    await jsm.streams.info(config.natsStream);
    return 'present';
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await jsm.streams.add({
    name: config.natsStream,
    subjects: [`${config.natsSubjectPrefix}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    num_replicas: config.natsReplicas,
    duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000, // nanoseconds
  });
  return 'created';
}

export async function managerOf(nc: NatsConnection): Promise<JetStreamManager> {
  return jetstreamManager(nc);
}

function isNotFound(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === 404 || code === '404' || (typeof message === 'string' && /not found/i.test(message));
}
