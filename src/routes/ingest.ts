/**
 * `POST /<stream>`: check, parse, queue, answer (SPEC sections 3 and 9).
 * The checks run in the SPEC's order: unknown stream 404 / method 405 →
 * Content-Type 415 → size 413 → body 400 → queue 503.
 */
import express, { type Request, type RequestHandler, Router } from 'express';
import type { Config } from '../config.js';
import {
  BadRequestError,
  type IngestError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
} from '../errors.js';
import { type History, PAYLOAD_MAX_CHARS, payloadText } from '../history.js';
import type { Metrics } from '../metrics.js';
import { parseReadings } from '../reading.js';
import type { StreamActivity } from '../stream-activity.js';
import type { Writer } from '../writer/writer.js';
import { answeredStatus } from '../answered-status.js';
import type { Lifecycle } from '../lifecycle.js';
import { requireToken } from '../auth.js';
import { createRateLimit } from '../rate-limit.js';

export type IngestConfig = Pick<
  Config,
  'streams' | 'maxRequestBytes' | 'maxBatchRows' | 'ackMode' | 'durableAckTimeoutSec' | 'ingestToken' | 'rateLimitPerMin'
>;

export interface IngestDeps {
  readonly config: IngestConfig;
  readonly writer: Writer;
  readonly lifecycle: Lifecycle;
  readonly metrics: Metrics;
  readonly history: History;
  readonly activity: StreamActivity;
  readonly now: () => number;
}

export function createIngestRouter(deps: IngestDeps): Router {
  const { config, writer, lifecycle, metrics, history, activity, now } = deps;
  const streams = new Set(config.streams);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const readBody = express.raw({ type: () => true, limit: config.maxRequestBytes });
  const router = Router();

  /**
   * Every request to a configured stream's path, whatever its answer, goes
   * into history and the ingest metrics once it is answered.
   */
  const track: RequestHandler = (req, res, next) => {
    const stream = req.params.stream as string;
    if (!streams.has(stream)) return next();
    res.locals.stream = stream;
    res.locals.route = `/${stream}`;
    res.once('close', () => {
      const rows = (res.locals.rows as number | undefined) ?? 0;
      const status = answeredStatus(res);
      if (status < 300) metrics.ingestAccepted(stream, rows);
      else metrics.ingestRejected(stream, String(res.locals.errorCode ?? (status === 499 ? 'client_closed' : 'error')).toLowerCase());
      history.record({
        time: new Date(now()).toISOString(),
        stream,
        ip: req.ip ?? '',
        status,
        rows: status < 300 ? rows : 0,
        payload: (res.locals.payload as string | undefined) ?? '',
      });
    });
    next();
  };

  const checkRoute: RequestHandler = (req, res, next) => {
    const stream = req.params.stream as string;
    if (!streams.has(stream)) {
      throw new NotFoundError(`no stream named '${stream}'; this server takes ${config.streams.join(', ')}`);
    }
    if (req.method !== 'POST') throw new MethodNotAllowedError(req.method, ['POST']);
    next();
  };

  const ingest: RequestHandler = async (req, res) => {
    const stream = req.params.stream as string;
    checkContentType(req);
    const body = await readRawBody(req, res);
    res.locals.payload = payloadText(body.toString('utf8', 0, PAYLOAD_MAX_CHARS * 4));
    const readings = parseReadings(parseJson(body), config);
    if (readings.length > writer.capacity) {
      // It could never fit, so a 503 "retry later" would be a lie.
      throw new PayloadTooLargeError(
        `the request has ${readings.length} readings, more than the write queue holds (WRITE_QUEUE_MAXSIZE ${writer.capacity})`,
        'BATCH_TOO_LARGE',
      );
    }
    const durable = wantsDurableAck(req, config.ackMode);

    const receivedAt = now();
    const stored = writer.enqueue(stream, readings, receivedAt);
    activity.record(stream, receivedAt);
    res.locals.rows = readings.length;
    if (!durable) {
      res.status(202).json({ status: 'queued', rows: readings.length });
      return;
    }
    await waitForFsync(stored);
    res.status(201).json({ status: 'stored', rows: readings.length });
  };

  function checkContentType(req: Request): void {
    const type = req.headers['content-type'];
    const mediaType = type?.split(';', 1)[0]?.trim().toLowerCase();
    if (mediaType !== 'application/json') {
      throw new UnsupportedMediaTypeError(
        type === undefined ? 'Content-Type is missing; send application/json' : `Content-Type '${type}' is not supported; send application/json`,
      );
    }
  }

  /** Reads the body within MAX_REQUEST_BYTES; body-parser refuses a too-long Content-Length before reading. */
  async function readRawBody(req: Request, res: express.Response): Promise<Buffer> {
    // body-parser limits the decoded size; SPEC section 9 limits the compressed size too.
    if (Number(req.headers['content-length'] ?? 0) > config.maxRequestBytes) {
      throw new PayloadTooLargeError(`the body is larger than MAX_REQUEST_BYTES (${config.maxRequestBytes} bytes)`);
    }
    await new Promise<void>((resolve, reject) => {
      readBody(req, res, (error?: unknown) => (error === undefined ? resolve() : reject(translateBodyError(error))));
    });
    const body: unknown = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new BadRequestError('the body is empty; send a JSON object or array', 'EMPTY_BODY');
    return body;
  }

  function translateBodyError(error: unknown): IngestError | unknown {
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') {
      return new PayloadTooLargeError(`the body is larger than MAX_REQUEST_BYTES (${config.maxRequestBytes} bytes)`);
    }
    if (type === 'encoding.unsupported') {
      return new UnsupportedMediaTypeError(`Content-Encoding '${(error as { encoding?: string }).encoding}' is not supported`);
    }
    return new BadRequestError(`the body could not be read: ${(error as Error).message}`, 'BAD_BODY', { cause: error });
  }

  function parseJson(body: Buffer): unknown {
    let text: string;
    try {
      text = utf8.decode(body);
    } catch (error) {
      throw new BadRequestError('the body is not valid UTF-8', 'BAD_ENCODING', { cause: error });
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BadRequestError(`the body is not valid JSON: ${(error as Error).message}`, 'BAD_JSON', { cause: error });
    }
  }

  /**
   * SPEC section 9: wait at most DURABLE_ACK_TIMEOUT_SEC, then 503; the rows
   * stay queued. Once shutdown has begun, wait for the drain instead.
   */
  async function waitForFsync(stored: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), config.durableAckTimeoutSec * 1000);
    });
    const done = await Promise.race([stored.then(() => false), timedOut]);
    clearTimeout(timer);
    if (!done) return;
    if (lifecycle.closing) return stored;
    throw new ServiceUnavailableError(
      `the rows are queued but not yet on disk after ${config.durableAckTimeoutSec} s; they will still be written`,
      'DURABLE_TIMEOUT',
      writer.retryAfterSec(),
    );
  }

  router.all('/:stream', track, requireToken(config.ingestToken), checkRoute, createRateLimit(config.rateLimitPerMin), ingest);
  return router;
}

function wantsDurableAck(req: Request, ackMode: Config['ackMode']): boolean {
  const ack = req.query.ack;
  if (ack === undefined) return ackMode === 'durable';
  if (ack === 'durable') return true;
  if (ack === 'queued') return ackMode === 'durable';
  throw new BadRequestError(`ack must be 'durable' or 'queued', got ${JSON.stringify(ack)}`, 'BAD_ACK');
}
