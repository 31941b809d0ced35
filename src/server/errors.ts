/**
 * The HTTP edge of the errors (shared/errors.ts): the writer's domain errors
 * become answers here, and every error a route ends in is rendered as
 * `{"error": "<words>", "code": "<CODE>"}` with its status. Both servers'
 * apps end with `noRoute` and `renderErrors`.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import {
  IngestError,
  NotFoundError,
  PayloadTooLargeError,
  QueueFullError,
  ServiceUnavailableError,
  ShuttingDownError,
  TooLargeForQueueError,
  WriterClosedError,
} from '../shared/errors.js';

/** The request error an error stands for: a 503 or 413 for the writer's refusals, a 4xx for the parsers', else a 500. */
export function toRequestError(error: unknown): IngestError {
  if (error instanceof IngestError) return error;
  if (error instanceof WriterClosedError) return new ShuttingDownError(error.retryAfterSec);
  if (error instanceof QueueFullError) return new ServiceUnavailableError(error.message, error.code, error.retryAfterSec);
  // It could never fit, so a 503 "retry later" would be a lie.
  if (error instanceof TooLargeForQueueError) return new PayloadTooLargeError(error.message, error.code);
  // Errors Express and its parsers raise carry a 4xx status (a bad URL encoding, say).
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new IngestError((error as Error).message, status, 'BAD_REQUEST', { cause: error });
  }
  return new IngestError('internal error', 500, 'INTERNAL', { cause: error });
}

/** The last route: a 404 in words for any path nothing else answered. */
export const noRoute: RequestHandler = (req) => {
  throw new NotFoundError(`no route for ${req.method} ${req.path}`);
};

/** Every error becomes `{"error": "<words>", "code": "<CODE>"}` with its status; a 500 is logged. */
export function renderErrors(log: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, _next) => {
    const known = toRequestError(error);
    if (known.statusCode >= 500 && known.code === 'INTERNAL') log.error({ err: error }, 'request failed');
    res.locals.errorCode = known.code;
    res.status(known.statusCode).set(known.headers).json({ error: known.message, code: known.code });
  };
}
