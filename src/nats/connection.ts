/**
 * What the forwarder and the collector share about NATS: how to connect
 * (SPEC section 10's variables), and the JetStream stream they both use,
 * created by whichever side finds it missing and never changed if present.
 */
import { readFileSync } from 'node:fs';
import { type JetStreamManager, RetentionPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect, credsAuthenticator } from '@nats-io/transport-node';
import type { Config } from '../config.js';

export type NatsConfig = Pick<Config, 'natsUrl' | 'natsCreds' | 'natsSubjectPrefix' | 'natsStream' | 'natsReplicas'>;

/** SPEC section 10: JetStream drops a message whose id it saw within this window. */
export const DUPLICATE_WINDOW_MS = 10 * 60 * 1000;

/**
 * Connects, and keeps reconnecting for ever: NATS may be down when the
 * server starts, or go away for hours. The caller watches `status()`.
 */
export function connectNats(config: NatsConfig, name: string): Promise<NatsConnection> {
  const creds = config.natsCreds;
  return connect({
    servers: [...(config.natsUrl ?? [])],
    name,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // An Error (with its stack) per request only to improve traces costs ingest CPU on a Pi.
    noAsyncTraces: true,
    ...(creds === undefined ? {} : { authenticator: credsAuthenticator(() => readFileSync(creds)) }),
  });
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

/** An error's message with any `user:pass@` in a URL removed: credentials never reach the logs. */
export function safeMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\/\/[^@/\s]*@/g, '//[redacted]@');
}
