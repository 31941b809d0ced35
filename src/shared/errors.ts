/**
 * The project's errors, in two kinds.
 *
 * - Domain errors (`WriteRefusedError` and its subclasses): what the writer
 *   says when it cannot take rows. They know nothing of HTTP; each program
 *   decides what they mean for it (the ingest routes answer 503 or 413, the
 *   collector leaves the message unacked for redelivery).
 * - Request errors (`IngestError` and its subclasses): what a request ends
 *   in, with its HTTP status and a stable code; the error middleware
 *   (server/errors.ts) renders `{"error": "<words>", "code": "<CODE>"}`.
 *
 * Library errors are translated into these where the library is called.
 */

/** The writer did not take the rows; `code` is stable, the message says why in words. */
export class WriteRefusedError extends Error {
  constructor(
    message: string,
    readonly code: 'SHUTTING_DOWN' | 'QUEUE_FULL' | 'BATCH_TOO_LARGE',
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The writer is closed: shutdown has begun, and nothing more is taken. */
export class WriterClosedError extends WriteRefusedError {
  constructor(readonly retryAfterSec: number) {
    super('the server is shutting down', 'SHUTTING_DOWN');
  }
}

/** The write queue cannot take the rows now (SPEC section 8); they may fit after `retryAfterSec`. */
export class QueueFullError extends WriteRefusedError {
  constructor(
    message: string,
    readonly retryAfterSec: number,
  ) {
    super(message, 'QUEUE_FULL');
  }
}

/** The rows could never fit in the write queue, however long one waits. */
export class TooLargeForQueueError extends WriteRefusedError {
  constructor(message: string) {
    super(message, 'BATCH_TOO_LARGE');
  }
}

export interface IngestErrorOptions {
  readonly cause?: unknown;
  /** Extra response headers, such as `Allow` or `Retry-After`. */
  readonly headers?: Readonly<Record<string, string>>;
}

export class IngestError extends Error {
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    message: string,
    readonly statusCode: number,
    readonly code: string,
    options: IngestErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.headers = options.headers ?? {};
  }
}

/** 400: bad JSON, or a body whose shape or keys break the rules. */
export class BadRequestError extends IngestError {
  constructor(message: string, code = 'BAD_REQUEST', options?: IngestErrorOptions) {
    super(message, 400, code, options);
  }
}

export class UnauthorizedError extends IngestError {
  constructor(message = 'missing or wrong token') {
    super(message, 401, 'UNAUTHORIZED', { headers: { 'WWW-Authenticate': 'Bearer' } });
  }
}

export class NotFoundError extends IngestError {
  constructor(message: string) {
    super(message, 404, 'NOT_FOUND');
  }
}

export class MethodNotAllowedError extends IngestError {
  constructor(method: string, allowed: readonly string[]) {
    super(`method ${method} is not allowed here; use ${allowed.join(', ')}`, 405, 'METHOD_NOT_ALLOWED', {
      headers: { Allow: allowed.join(', ') },
    });
  }
}

/** 413: the body, or the batch inside it, is larger than the configured limit. */
export class PayloadTooLargeError extends IngestError {
  constructor(message: string, code = 'TOO_LARGE') {
    super(message, 413, code);
  }
}

export class UnsupportedMediaTypeError extends IngestError {
  constructor(message: string) {
    super(message, 415, 'UNSUPPORTED_MEDIA_TYPE');
  }
}

/** 503 with `Retry-After`: the queue cannot take the rows now, or the server is stopping. */
export class ServiceUnavailableError extends IngestError {
  constructor(message: string, code: string, retryAfterSec: number) {
    super(message, 503, code, { headers: { 'Retry-After': String(retryAfterSec) } });
  }
}

/** The one "shutting down" answer (SPEC section 7): a 503 with `Retry-After`. */
export class ShuttingDownError extends ServiceUnavailableError {
  constructor(retryAfterSec: number) {
    super('the server is shutting down', 'SHUTTING_DOWN', retryAfterSec);
  }
}
