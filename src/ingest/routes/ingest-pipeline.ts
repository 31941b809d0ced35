/**
 * What every ingest route shares (SPEC sections 3, 8 and 9): the checks in
 * the SPEC's order — token 401 → unknown stream 404 / method 405 → rate
 * limit 429 → (the route's own Content-Type 415) → size 413 → body 400 →
 * queue 503 — and, around them, idempotent replays, history and metrics.
 * `POST /<stream>` and the line-protocol routes are built from these steps.
 *
 * Each route is one Express handler that runs its checks itself, mounted
 * before the app's middleware: ingest is nearly all of the traffic, and a
 * chain of a dozen middleware functions cost more than the ingest itself
 * (docs/performance.md). It sets the security headers and observes the
 * request (log line, metrics) as the middleware does for other routes.
 */
import type { Request, RequestHandler, Response } from 'express';
import { answeredStatus } from '../../server/answered-status.js';
import { createTokenCheck } from '../../server/auth.js';
import type { Config } from '../../shared/config.js';
import type { RowsAccepted } from '../dashboard/live-feed.js';
import { BadRequestError, MethodNotAllowedError, NotFoundError, PayloadTooLargeError, ServiceUnavailableError, ShuttingDownError } from '../../shared/errors.js';
import { BodyTooLargeError, readBody as readRequestBody } from '../formats/read-body.js';
import { type History, PAYLOAD_MAX_CHARS, payloadText } from '../history.js';
import { type IdempotencyStore, type KeyClaim, type RecordedAnswer, idempotencyKeyOf, idempotencyKeyProblem } from '../idempotency.js';
import type { Lifecycle } from '../lifecycle.js';
import type { Metrics } from '../../server/metrics.js';
import type { RequestObserver } from '../../server/request-log.js';
import type { SecurityHeaders } from '../../server/security-headers.js';
import { createRateLimit } from '../rate-limit.js';
import { type Reading, checkRequestWidth } from '../../storage/reading.js';
import type { StreamActivity } from '../../server/stream-activity.js';
import type { Writer } from '../../writer/writer.js';

export type IngestConfig = Pick<
  Config,
  'streams' | 'maxRequestBytes' | 'maxBatchRows' | 'maxColumns' | 'ackMode' | 'durableAckTimeoutSec' | 'ingestToken' | 'rateLimitPerMin' | 'trustProxy'
>;

export interface IngestDeps {
  readonly config: IngestConfig;
  readonly writer: Writer;
  readonly lifecycle: Lifecycle;
  readonly metrics: Metrics;
  readonly history: History;
  readonly activity: StreamActivity;
  readonly idempotency: IdempotencyStore;
  readonly now: () => number;
  /** Told of every accepted request's rows once they are queued (the dashboard's live feed). */
  readonly onRowsAccepted: RowsAccepted;
  /** The request's log line and metrics, as for every other route. */
  readonly observer: RequestObserver;
  readonly securityHeaders: SecurityHeaders;
}

/** How one ingest route names its stream, its metrics route, its tokens and its success answers. */
export interface IngestRoute {
  /** The stream the request is for, as given (it may not exist). */
  streamOf(req: Request): string | undefined;
  /** The `route` label: the stream's path, or the route's fixed path. */
  routeOf(req: Request, stream: string): string;
  /** Authorization schemes taken besides Bearer (line protocol takes `Token`). */
  readonly tokenSchemes: readonly string[];
  /** The answers for queued and for stored rows. */
  answer(rows: number, durable: boolean): RecordedAnswer;
}

/** A route's own work once the checks passed: read the body, parse it, `accept` it. */
export type IngestHandle = (req: Request, res: Response) => Promise<void>;

export interface IngestPipeline {
  /** The whole route as one handler: the checks before the body in the SPEC's order, replays, then `handle`. */
  handler(route: IngestRoute, handle: IngestHandle): RequestHandler;
  /** The body within MAX_REQUEST_BYTES, compressed and decompressed; noted for history. */
  readBody(req: Request, res: Response): Promise<Buffer>;
  /** Queues the readings (all or none) and answers, after the fsync when durable. */
  accept(req: Request, res: Response, route: IngestRoute, stream: string, readings: Reading[], receivedAt: number): Promise<void>;
}

export function createIngestPipeline(deps: IngestDeps): IngestPipeline {
  const { config, writer, lifecycle, metrics, history, activity, idempotency, now, onRowsAccepted, observer, securityHeaders } = deps;
  const streams = new Set(config.streams);
  // One fixed window per client IP over every ingest route (none when RATE_LIMIT_PER_MIN is 0).
  const rateLimit = config.rateLimitPerMin === 0 ? undefined : createRateLimit(config.rateLimitPerMin);
  // Without TRUST_PROXY the client is the socket's peer: Express's req.ip would parse X-Forwarded-For to find that out.
  const direct = config.trustProxy === undefined || config.trustProxy === false || config.trustProxy === 0;
  const clientIp = (req: Request): string => (direct ? req.socket.remoteAddress : req.ip) ?? '';
  const answerJson = ['Content-Type', 'application/json; charset=utf-8'];

  /** Every request for a configured stream, whatever its answer, goes into history and the ingest metrics. */
  const recordIngest = (req: Request, res: Response, stream: string): void => {
    const rows = (res.locals.rows as number | undefined) ?? 0;
    const status = answeredStatus(res);
    const replayed = res.locals.replayed === true;
    if (replayed) metrics.ingestDuplicate(stream);
    else if (status < 300) metrics.ingestAccepted(stream, rows);
    else metrics.ingestRejected(stream, String(res.locals.errorCode ?? (status === 499 ? 'client_closed' : 'error')).toLowerCase());
    history.record({
      time: new Date(now()).toISOString(),
      stream,
      ip: clientIp(req),
      status,
      rows: status < 300 && !replayed ? rows : 0,
      payload: (res.locals.payload as string | undefined) ?? '',
      replayed: replayed || undefined,
    });
  };

  /**
   * The checks before the body, in the SPEC's order: shutting down 503 first
   * of all (SPEC section 7), then the token 401, unknown stream 404, method
   * 405. The rate limit (429) follows, as it may have to wait.
   */
  const checkBeforeBody = (req: Request, res: Response, stream: string | undefined, checkToken: ReturnType<typeof createTokenCheck>): void => {
    if (lifecycle.closing) {
      res.set('Connection', 'close');
      throw new ShuttingDownError(writer.retryAfterSec());
    }
    const wrongToken = checkToken?.(req.headers.authorization);
    if (wrongToken !== undefined) throw wrongToken;
    if (stream === undefined || !streams.has(stream)) {
      throw new NotFoundError(`no stream named '${stream ?? ''}'; this server takes ${config.streams.join(', ')}`);
    }
    if (req.method !== 'POST') throw new MethodNotAllowedError(req.method, ['POST']);
  };

  /** A key seen before on this stream: answer as the first time, store nothing. True when answered. */
  const replayRepeat = async (req: Request, res: Response, route: IngestRoute, stream: string, key: string): Promise<boolean> => {
    for (;;) {
      const claim = idempotency.claim(stream, key);
      if (claim.first) {
        res.locals.claim = claim.claim;
        res.once('close', () => claim.claim.answered({ status: answeredStatus(res), body: res.locals.answerBody }));
        return false;
      }
      await claim.earlier.answered;
      if (!claim.earlier.accepted) continue; // its rows never made the queue: this request goes ahead
      res.locals.replayed = true;
      res.set('Idempotent-Replayed', 'true');
      if (claim.earlier.answer !== undefined) {
        respond(res, claim.earlier.answer);
        return true;
      }
      // Its rows were queued but its durable ack timed out: answer once they are stored.
      await waitForFsync(claim.earlier.stored as Promise<void>);
      respond(res, route.answer(claim.earlier.rows ?? 0, true));
      return true;
    }
  };

  const handler = (route: IngestRoute, handle: IngestHandle): RequestHandler => {
    const checkToken = createTokenCheck(config.ingestToken, ['bearer', ...route.tokenSchemes]);
    return async (req, res) => {
      const started = performance.now();
      const stream = route.streamOf(req);
      const known = stream !== undefined && streams.has(stream);
      if (known) {
        res.locals.stream = stream;
        res.locals.route = route.routeOf(req, stream);
      }
      // One listener for the request's log line, metrics and history: 'close' comes once for every request, answered or aborted.
      res.on('close', () => {
        observer.observe(req, res, started);
        if (known) recordIngest(req, res, stream);
      });
      try {
        checkBeforeBody(req, res, stream, checkToken);
        if (rateLimit !== undefined) await runMiddleware(rateLimit, req, res);
        const found = idempotencyKeyOf((header) => req.get(header));
        // A key too long to remember is never claimed; accept() refuses it with the body's 400s (SPEC section 9's order).
        if (found !== undefined && idempotencyKeyProblem(found) === undefined && (await replayRepeat(req, res, route, stream as string, found.key))) return;
        await handle(req, res);
      } catch (error) {
        // The error answer is rendered by the app's error handler, after the middleware that sets these.
        if (!res.headersSent) securityHeaders.apply(res);
        throw error;
      }
    };
  };

  /** Sends an answer and keeps it for idempotent replays; one writeHead, no Express response helpers. */
  function respond(res: Response, answer: RecordedAnswer): void {
    res.locals.answerBody = answer.body;
    if (answer.body === undefined) {
      res.writeHead(answer.status, securityHeaders.flat as string[]).end();
      return;
    }
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, [...securityHeaders.flat, ...answerJson, 'Content-Length', String(Buffer.byteLength(text))]).end(text);
  }

  async function readBody(req: Request, res: Response): Promise<Buffer> {
    let body: Buffer;
    try {
      body = await readRequestBody(req, config.maxRequestBytes);
    } catch (error) {
      // Part of a too-large body may still be on its way: do not keep the connection.
      if (error instanceof BodyTooLargeError) res.set('Connection', 'close');
      throw error;
    }
    if (body.length === 0) throw new BadRequestError('the body is empty', 'EMPTY_BODY');
    res.locals.payload = payloadText(body.toString('utf8', 0, PAYLOAD_MAX_CHARS * 4));
    return body;
  }

  async function accept(req: Request, res: Response, route: IngestRoute, stream: string, readings: Reading[], receivedAt: number): Promise<void> {
    if (readings.length > writer.capacity) {
      // It could never fit, so a 503 "retry later" would be a lie.
      throw new PayloadTooLargeError(
        `the request has ${readings.length} readings, more than the write queue holds (WRITE_QUEUE_MAXSIZE ${writer.capacity})`,
        'BATCH_TOO_LARGE',
      );
    }
    checkRequestWidth(readings, config.maxColumns);
    const found = idempotencyKeyOf((header) => req.get(header));
    const keyProblem = found === undefined ? undefined : idempotencyKeyProblem(found);
    if (keyProblem !== undefined) throw new BadRequestError(keyProblem, 'BAD_IDEMPOTENCY_KEY');
    const durable = wantsDurableAck(req, config.ackMode);
    const stored = writer.enqueue(stream, readings, receivedAt);
    activity.record(stream, receivedAt);
    onRowsAccepted(stream, readings, receivedAt);
    res.locals.rows = readings.length;
    (res.locals.claim as KeyClaim | undefined)?.accepted(readings.length, stored);
    if (durable) await waitForFsync(stored);
    respond(res, route.answer(readings.length, durable));
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
    const late = await Promise.race([stored.then(() => false), timedOut]);
    clearTimeout(timer);
    if (!late) return;
    if (lifecycle.closing) return stored;
    throw new ServiceUnavailableError(
      `the rows are queued but not yet on disk after ${config.durableAckTimeoutSec} s; they will still be written (retry with the same Idempotency-Key)`,
      'DURABLE_TIMEOUT',
      writer.retryAfterSec(),
    );
  }

  return { handler, readBody, accept };
}

/** Runs an Express middleware (the rate limit) inside a handler: resolves when it passes the request on. */
function runMiddleware(middleware: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    const passed = (error?: unknown): void => {
      if (error === undefined || error === null) resolve();
      else reject(error instanceof Error ? error : new Error('the rate limit failed', { cause: error }));
    };
    Promise.resolve(middleware(req, res, passed)).catch(reject);
  });
}

function wantsDurableAck(req: Request, ackMode: Config['ackMode']): boolean {
  // Express parses the query string anew at each read of req.query: most ingest URLs have none.
  if (!req.url.includes('?')) return ackMode === 'durable';
  const ack = req.query.ack;
  if (ack === undefined) return ackMode === 'durable';
  if (ack === 'durable') return true;
  if (ack === 'queued') return ackMode === 'durable';
  throw new BadRequestError(`ack must be 'durable' or 'queued', got ${JSON.stringify(ack)}`, 'BAD_ACK');
}
