/**
 * The collector (SPEC section 10): a durable JetStream pull consumer that
 * writes every row to `DATA_DIR/<site>/<stream>.csv` through the same writer
 * as ingest, exactly once:
 *
 *   take the messages waiting ─► invalid? +TERM ─► already written (journal)? ack later
 *     ─► the rest to the writer, one row each with its own received_at
 *     ─► all fsynced ─► journal the rows and the files' new lengths (fsync)
 *     ─► ack the batch
 *
 * A crash before the journal line leaves rows the journal does not cover:
 * start-up cuts them off (collect-repair.ts) and JetStream redelivers them.
 */
import { WriteRefusedError, WriterClosedError } from '../shared/errors.js';
import { mkdirSync, openSync, closeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy, type JsMsg, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../shared/config.js';
import type { FileWritten } from '../writer/task.js';
import type { Writer } from '../writer/writer.js';
import type { CollectJournal, WrittenRow } from './journal.js';
import type { CollectMetrics } from './metrics.js';
import { type NatsConfig, connectAndFollow, ensureStream, managerOf } from '../nats/connection.js';
import { safeMessage } from '../shared/redaction.js';
import { createPause } from '../nats/pause.js';
import { deadlineIn, settledWithin } from '../shared/deadline.js';
import { type RowMessage, type RowOrigin, cellColumns, messageId, rowBytes, validateRowMessage } from '../nats/row-message.js';

export type CollectorConfig = NatsConfig & Pick<Config, 'dataDir' | 'collectConsumer' | 'writeQueueMaxSize'>;

export interface CollectorDeps {
  readonly config: CollectorConfig;
  readonly logger: Logger;
  readonly writer: Writer;
  readonly journal: CollectJournal;
  readonly metrics: CollectMetrics;
  /** The central files' lengths reached since the last call (file id → length), from the writer's reports. */
  readonly takeEnds: () => Map<string, number>;
  /** Set when the writer wrote rows but could not keep a file's state: the journal cannot vouch for them. */
  readonly stateLost: () => boolean;
  /** Stops the process: the only way out when the journal cannot be kept. */
  readonly fatal: (message: string) => void;
}

/**
 * Follows the writer's reports for the journal: the length each central
 * file (by id) has reached since the last `take()`, the archived one of an
 * archive-and-widen included, and whether a file's state could not be kept.
 */
export function trackFileEnds(): { fileWritten: (outcome: FileWritten) => void; take: () => Map<string, number>; lost: () => boolean } {
  let ends = new Map<string, number>();
  let lost = false;
  return {
    fileWritten: (outcome) => {
      if (outcome.archived !== undefined) ends.set(outcome.archived.id, outcome.archived.end);
      if (outcome.fileId !== undefined && outcome.end !== undefined) ends.set(outcome.fileId, outcome.end);
      if (outcome.stateError !== undefined) lost = true;
    },
    take: () => {
      const taken = ends;
      ends = new Map();
      return taken;
    },
    lost: () => lost,
  };
}

export interface Collector {
  readonly connected: boolean;
  /** Stops consuming and finishes the batch in hand, waiting for it at most `deadlineMs`. */
  close(deadlineMs?: number): Promise<void>;
}

/** SPEC section 10: a killed collector's unacked messages come again after this. */
export const ACK_WAIT_MS = 30_000;
/** Kept back from the shutdown deadline for closing the connection, which sends the naks. */
const CLOSE_RESERVE_MS = 500;
/** Longer than closing the connection takes. */
const NAK_DELAY_MS = 2_000;
/** Messages written, journaled and acked together at most. */
const BATCH_MAX = 1000;

interface ToWrite {
  readonly msg: JsMsg;
  readonly message: RowMessage;
  readonly origin: RowOrigin;
}

export function startCollector(deps: CollectorDeps): Collector {
  const { config, writer, journal, metrics } = deps;
  const log = deps.logger.child({ component: 'collector' });
  const knownSites = new Set<string>();
  let nc: NatsConnection | undefined;
  let connected = false;
  let closed = false;
  let invalidSeen = 0;
  let stopConsuming: (() => void) | undefined;
  const idle = createPause();

  /** `DATA_DIR/<site>/`, made durable before its first file. The name was checked: `[a-z0-9_-]{1,64}`. */
  function siteDir(site: string): void {
    if (knownSites.has(site)) return;
    mkdirSync(join(config.dataDir, site), { recursive: true });
    const fd = openSync(config.dataDir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    knownSites.add(site);
  }

  function refuse(msg: JsMsg, why: string): void {
    metrics.invalid();
    invalidSeen++;
    if (invalidSeen <= 10 || invalidSeen % 100 === 0) {
      log.warn({ subject: msg.subject, seq: msg.seq, why, invalid_total: invalidSeen }, 'invalid message terminated');
    }
    // A plain +TERM: nats-server 2.9 ignores a term that carries a reason and redelivers for ever.
    msg.term();
  }

  async function handle(batch: readonly JsMsg[]): Promise<void> {
    const toWrite: ToWrite[] = [];
    const toAck: JsMsg[] = [];
    const inBatch = new Set<string>();
    for (const msg of batch) {
      const checked = validateRowMessage(msg.subject, msg.headers?.get('Nats-Msg-Id'), msg.data);
      if (!checked.ok) {
        refuse(msg, checked.why);
        continue;
      }
      const id = messageId(checked.origin);
      if (journal.has(checked.origin) || inBatch.has(id)) {
        metrics.duplicate();
        toAck.push(msg);
        continue;
      }
      inBatch.add(id);
      toWrite.push({ msg, message: checked.message, origin: checked.origin });
    }

    const waits: Array<Promise<void>> = [];
    const written: ToWrite[] = [];
    for (const row of toWrite) {
      const { site, stream, cells, received_at: receivedAt } = row.message;
      try {
        siteDir(site);
        const columns = cellColumns(row.msg.data, cells);
        waits.push(writer.enqueue(`${site}/${stream}`, [{ columns, cells: columns.map((column) => cells[column] as string) }], Date.parse(receivedAt)));
        written.push(row);
      } catch (error) {
        // Not acked, so JetStream hands it out again: the queue is full (a stalled disk), the site's
        // folder could not be made, or the writer is closing (shutdown: nothing to warn about).
        if (!(error instanceof WriterClosedError)) {
          log.warn({ err: safeMessage(error), code: error instanceof WriteRefusedError ? error.code : undefined }, 'row not queued; it will be redelivered');
        }
        break;
      }
    }
    await Promise.all(waits);
    if (deps.stateLost()) {
      deps.fatal('a central file state could not be kept; restarting so start-up repair can set it right');
      return;
    }
    const rows: WrittenRow[] = written.map(({ origin, message }) => ({ origin, end: origin.offset + rowBytes(message) }));
    try {
      journal.append(deps.takeEnds(), rows);
    } catch (error) {
      // Written but not journaled: never acked, and cut off at the next start, so they come again once.
      deps.fatal(`cannot append to the collect journal (${safeMessage(error)}); restarting so start-up repair can set it right`);
      return;
    }
    for (const { msg } of written) msg.ack();
    for (const msg of toAck) msg.ack();
    const counts = new Map<string, number>();
    for (const { message } of written) counts.set(`${message.site}\n${message.stream}`, (counts.get(`${message.site}\n${message.stream}`) ?? 0) + 1);
    for (const [key, count] of counts) {
      const [site, stream] = key.split('\n') as [string, string];
      metrics.rowsWritten(site, stream, count);
    }
  }

  async function ensureConsumer(): Promise<void> {
    const jsm = await managerOf(nc as NatsConnection);
    await ensureStream(jsm, config);
    try {
      await jsm.consumers.info(config.natsStream, config.collectConsumer);
    } catch (error) {
      if (!/not found/i.test(safeMessage(error)) && (error as { code?: unknown }).code !== 404) throw error;
      await jsm.consumers.add(config.natsStream, {
        durable_name: config.collectConsumer,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ACK_WAIT_MS * 1_000_000,
        deliver_policy: DeliverPolicy.All,
        filter_subject: `${config.natsSubjectPrefix}.>`,
        max_ack_pending: 4 * BATCH_MAX,
      });
      log.info({ consumer: config.collectConsumer, stream: config.natsStream }, 'JetStream consumer created');
    }
  }

  let busy: Promise<void> = Promise.resolve();
  /** The batch being written, journaled and acked. */
  let inHand: readonly JsMsg[] = [];
  /** Messages JetStream has handed over that no batch has taken yet. */
  let waiting: JsMsg[] = [];
  /** Wakes the reading loop when it waits for room in `waiting`. */
  let roomMade: (() => void) | undefined;
  const wakeReader = (): void => roomMade?.();

  const running = (async () => {
    try {
      log.info({ servers: config.natsUrl?.length, stream: config.natsStream, consumer: config.collectConsumer }, 'connecting to NATS');
      nc = await connectAndFollow(config, 'sensor-ingest collector', log, {
        stillWanted: () => !closed,
        onChange: (now) => (connected = now),
        dropMessage: 'disconnected from NATS',
      });
      if (nc === undefined) return;
      for (let attempt = 0; !closed; attempt++) {
        try {
          await ensureConsumer();
          break;
        } catch (error) {
          if (attempt % 10 === 0) log.warn({ err: safeMessage(error) }, 'cannot find or create the stream or consumer; retrying');
          await idle.wait(2000);
        }
      }
      const js = jetstream(nc);
      const batchMax = Math.max(1, Math.min(BATCH_MAX, Math.floor(config.writeQueueMaxSize / 2)));
      while (!closed) {
        try {
          const consumer = await js.consumers.get(config.natsStream, config.collectConsumer);
          // consume(), not repeated fetch(): a fetch that expires with messages on the way drops
          // them, and they come back only after the ack wait, out of order.
          const messages = await consumer.consume({ max_messages: batchMax });
          stopConsuming = () => void messages.stop();
          waiting = [];
          let arrived: (() => void) | undefined;
          roomMade = undefined;
          const reading = (async () => {
            for await (const msg of messages) {
              // Stopping: what still comes is given back, like what waits (see close()).
              if (closed) {
                msg.nak(NAK_DELAY_MS);
                continue;
              }
              waiting.push(msg);
              arrived?.();
              // While the writer is slow (a full disk), stop taking messages: memory stays bounded,
              // and what JetStream hands out again after the ack wait is not piled up here.
              while (waiting.length >= 2 * batchMax && !closed) await new Promise<void>((resolve) => (roomMade = resolve));
            }
          })();
          while (!closed) {
            if (waiting.length === 0) {
              await Promise.race([new Promise<void>((resolve) => (arrived = resolve)), reading]);
              arrived = undefined;
              if (waiting.length === 0) break; // the subscription ended (a stop or a lost consumer)
            }
            // Once taken, a batch is written, journaled and acked even if a stop comes meanwhile.
            inHand = waiting.splice(0, batchMax);
            busy = handle(inHand);
            wakeReader();
            await busy;
          }
          messages.stop();
          wakeReader();
          await reading;
        } catch (error) {
          if (closed) break;
          log.warn({ err: safeMessage(error) }, 'consuming failed; trying again');
          await idle.wait(1000);
        }
      }
    } catch (error) {
      if (!closed) log.error({ err: safeMessage(error) }, 'collector stopped');
    }
  })();

  return {
    get connected() {
      return connected;
    },
    async close(deadlineMs = 30_000) {
      const left = deadlineIn(deadlineMs);
      closed = true;
      idle.wake();
      // Let the reading loop give back what the client holds before the stop throws it away.
      wakeReader();
      await new Promise((resolve) => setImmediate(resolve));
      stopConsuming?.();
      // A batch in hand is finished (written, journaled, acked) unless the writer cannot write.
      const finished = await settledWithin(busy, left() - CLOSE_RESERVE_MS);
      if (!finished) log.error('the batch in hand could not be written before the shutdown deadline; it comes again');
      // Handed over but not written: a nak gives them out again soon, in order, to the next
      // collector, rather than after the ack wait. Delayed, so that JetStream does not hand them
      // straight back to this connection's open pull, which is about to close. Rows of an unfinished
      // batch that did reach the file are cut at the next start-up (not journaled): none comes twice.
      for (const msg of [...(finished ? [] : inHand), ...waiting.splice(0)]) msg.nak(NAK_DELAY_MS);
      // Closing flushes the acks and naks; the loop then ends, unless a stalled write holds it.
      await settledWithin(flushAndClose(nc), left());
      // A connect attempt under way (NATS down) ends only at its back-off: do not wait for it long.
      await settledWithin(running, Math.min(2000, left()));
    },
  };
}

/** Sends what is buffered (acks, naks), then closes. */
async function flushAndClose(nc: NatsConnection | undefined): Promise<void> {
  if (nc === undefined || nc.isClosed()) return;
  await nc.flush().catch(() => {});
  await nc.close().catch(() => {});
}
