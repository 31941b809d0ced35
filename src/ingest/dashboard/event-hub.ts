/**
 * The Server-Sent Events clients of `/events` (https://html.spec.whatwg.org/multipage/server-sent-events.html):
 * at most `maxClients` at once (a forgotten tab must not wear out a Pi), a
 * keep-alive comment every `keepAliveMs` (proxies and NAT drop silent
 * connections), a client removed when its connection closes, and one that
 * stops reading dropped before its backlog grows past a bound.
 */
import type { Request, Response } from 'express';
import { ServiceUnavailableError, ShuttingDownError } from '../../shared/errors.js';

/** Dashboard tabs served at once. */
export const MAX_CLIENTS = 20;
export const KEEP_ALIVE_MS = 15_000;
/** What a refused client is told to wait, in seconds. */
export const RETRY_AFTER_SEC = 30;
/** Unsent bytes a client may fall behind by (beyond its first event) before it is dropped. */
export const MAX_LAG_BYTES = 1024 * 1024;
/** How long EventSource waits before reconnecting (its `retry:` field), in ms. */
const RECONNECT_MS = 2000;

export interface EventHubOptions {
  readonly maxClients?: number;
  readonly keepAliveMs?: number;
}

export interface EventHub {
  /**
   * Turns the answer into an event stream whose first event is `first`, or
   * throws a 503 (`TOO_MANY_CLIENTS`, or `SHUTTING_DOWN` once closed).
   */
  connect(req: Request, res: Response, first: { event: string; data: unknown }): void;
  /** Sends an event to every client; costs nothing without clients. */
  publish(event: string, data: unknown): void;
  /** Clients connected now. */
  readonly clients: number;
  /** Ends every stream and refuses new ones: a graceful stop must not wait for open tabs. */
  close(): void;
}

interface Client {
  readonly res: Response;
  /** `res.writableLength` past which the client counts as stuck. */
  readonly lagLimit: number;
}

export function createEventHub({ maxClients = MAX_CLIENTS, keepAliveMs = KEEP_ALIVE_MS }: EventHubOptions = {}): EventHub {
  const clients = new Set<Client>();
  let keepAlive: NodeJS.Timeout | undefined;
  let closed = false;

  function send(client: Client, text: string): void {
    if (client.res.writableLength > client.lagLimit) {
      client.res.destroy(); // its 'close' removes it
      return;
    }
    client.res.write(text);
  }

  function remove(client: Client): void {
    clients.delete(client);
    if (clients.size === 0 && keepAlive !== undefined) {
      clearInterval(keepAlive);
      keepAlive = undefined;
    }
  }

  return {
    connect(_req, res, first) {
      if (closed) throw new ShuttingDownError(RETRY_AFTER_SEC);
      if (clients.size >= maxClients) {
        throw new ServiceUnavailableError(
          `${maxClients} dashboard clients are connected already, the most this server serves; close a tab or retry later`,
          'TOO_MANY_CLIENTS',
          RETRY_AFTER_SEC,
        );
      }
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        // nginx would otherwise buffer the stream and deliver events late.
        'X-Accel-Buffering': 'no',
      });
      res.flushHeaders();
      const opening = `retry: ${RECONNECT_MS}\n\n${format(first.event, first.data)}`;
      const client: Client = { res, lagLimit: Buffer.byteLength(opening) + MAX_LAG_BYTES };
      clients.add(client);
      res.once('close', () => remove(client));
      res.write(opening);
      if (keepAlive === undefined) {
        keepAlive = setInterval(() => {
          for (const c of clients) send(c, ': keep-alive\n\n');
        }, keepAliveMs);
        keepAlive.unref();
      }
    },
    publish(event, data) {
      if (clients.size === 0) return;
      const text = format(event, data);
      for (const client of clients) send(client, text);
    },
    get clients() {
      return clients.size;
    },
    close() {
      closed = true;
      for (const client of [...clients]) {
        client.res.end();
        remove(client);
      }
    },
  };
}

/** One event; JSON text has no raw newline, so `data:` is one line. */
function format(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
