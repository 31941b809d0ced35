/**
 * Publishes a chunk of rows to JetStream at once and collects the stream's
 * acknowledgements on one reply subscription.
 *
 * This is what `js.publish` does for one message (a core publish with a
 * reply subject, the stream answering with its PubAck there), done for many:
 * `js.publish` makes a request per message, with its own timer, promise,
 * reply-table entry and an Error built (stack trace and all) each time a
 * request ends. At thousands of rows a second that was most of what
 * forwarding cost the server (docs/performance.md).
 *
 *   publish(chunk) ─► per message: Nats-Msg-Id header, reply <inbox>.<token>
 *     ─► PubAck {stream, seq} on <inbox>.<token>: acknowledged
 *        {error} or a 503 (no stream listens): not acknowledged
 *        nothing within the timeout, or the connection dropped: not acknowledged
 *
 * The caller publishes what was not acknowledged again, under the same ids:
 * JetStream's duplicate window keeps each row once.
 */
import { type Msg, type NatsConnection, type Subscription, createInbox, headers } from '@nats-io/transport-node';

export interface OutgoingMessage {
  readonly subject: string;
  /** Nats-Msg-Id: the stream keeps one message per id (within its duplicate window). */
  readonly id: string;
  readonly payload: string;
}

export interface BatchPublisher {
  /**
   * Publishes every message; resolves once each is answered or the timeout
   * passed, to undefined for each one acknowledged and a reason in words
   * for each one not.
   */
  publish(messages: readonly OutgoingMessage[], timeoutMs: number): Promise<Array<string | undefined>>;
  /** The connection dropped: what is still waiting is not acknowledged (answers to it may never come). */
  abandon(reason: string): void;
  close(): void;
}

export function createBatchPublisher(nc: NatsConnection): BatchPublisher {
  const inbox = createInbox();
  const waiting = new Map<string, (problem: string | undefined) => void>();
  let nextToken = 0;
  let subscription: Subscription | undefined;

  const subscribe = (): Subscription =>
    nc.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        // An error closes the subscription; the next publish makes a new one, and what waits times out.
        if (error !== null) return;
        const token = msg.subject.slice(inbox.length + 1);
        const settle = waiting.get(token);
        if (settle === undefined) return; // answered after its timeout
        waiting.delete(token);
        settle(problemOf(msg));
      },
    });

  const abandon = (reason: string): void => {
    const settles = [...waiting.values()];
    waiting.clear();
    for (const settle of settles) settle(reason);
  };

  return {
    publish(messages, timeoutMs) {
      if (subscription === undefined || subscription.isClosed()) subscription = subscribe();
      const problems = new Array<string | undefined>(messages.length).fill('not published');
      if (messages.length === 0) return Promise.resolve(problems);
      return new Promise((resolve) => {
        const tokens: string[] = [];
        let left = messages.length;
        const finish = (): void => {
          clearTimeout(timer);
          for (const token of tokens) waiting.delete(token);
          resolve(problems);
        };
        const timer = setTimeout(() => {
          for (const [index, token] of tokens.entries()) if (waiting.has(token)) problems[index] = `no acknowledgement within ${timeoutMs} ms`;
          finish();
        }, timeoutMs);
        for (const [index, message] of messages.entries()) {
          const token = (nextToken++).toString(36);
          tokens.push(token);
          waiting.set(token, (problem) => {
            problems[index] = problem;
            if (--left === 0) finish();
          });
          const withId = headers();
          withId.set('Nats-Msg-Id', message.id);
          try {
            nc.publish(message.subject, message.payload, { reply: `${inbox}.${token}`, headers: withId });
          } catch (error) {
            // A closed connection refuses at once; the message is simply not acknowledged.
            waiting.get(token)?.(`not published: ${(error as Error).message}`);
            waiting.delete(token);
          }
        }
      });
    },
    abandon,
    close() {
      abandon('the publisher closed');
      subscription?.unsubscribe();
    },
  };
}

/** Undefined for a PubAck, else why the message does not count as stored. */
export function problemOf(msg: Pick<Msg, 'headers' | 'data' | 'string'>): string | undefined {
  // A status message: 503 when no stream takes the subject.
  if (msg.headers?.hasError === true || (msg.headers?.code ?? 0) >= 400) {
    return `JetStream answered ${msg.headers?.code ?? '?'} ${msg.headers?.description ?? ''}`.trim();
  }
  if (msg.data.length === 0) return 'JetStream answered with an empty message';
  let ack: { seq?: unknown; error?: { description?: unknown; code?: unknown } };
  try {
    ack = JSON.parse(msg.string()) as typeof ack;
  } catch {
    return 'JetStream answered with something other than a PubAck';
  }
  if (ack.error !== undefined) {
    const why = ack.error.description;
    return `JetStream refused the message: ${typeof why === 'string' ? why : JSON.stringify(ack.error)}`;
  }
  return typeof ack.seq === 'number' ? undefined : 'JetStream answered with a PubAck without a sequence';
}
