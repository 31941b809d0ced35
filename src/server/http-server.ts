/**
 * The HTTP server both programs listen with (the ingest server and the
 * collector): Node's own, with SPEC section 11's slow-client limits kept on
 * time, and the errors Node answers itself, before any route runs (a request
 * too slow, headers too large, bytes that are not HTTP), answered in JSON
 * like every other error.
 */
import { type RequestListener, STATUS_CODES, type Server, createServer } from 'node:http';
import type { Duplex } from 'node:stream';

export interface SlowClientLimits {
  /** A request's headers must have arrived this long after it began. */
  readonly headersTimeoutMs: number;
  /** And all of it, body included, this long after it began. */
  readonly requestTimeoutMs: number;
  /**
   * How often Node looks for requests past those limits; the 408 comes at most
   * this late. Node's default, 30 s, let it come 30 s late: up to 40 s for
   * headers due at 10 s (`connectionsCheckingInterval`,
   * https://nodejs.org/api/http.html#httpcreateserveroptions-requestlistener).
   */
  readonly checkIntervalMs: number;
}

/** SPEC section 11: headers within 10 s, the body within 30 s, the 408 at most 2 s later. */
export const SLOW_CLIENT_LIMITS: SlowClientLimits = Object.freeze({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, checkIntervalMs: 1_000 });

/** Node's client error codes and what they are answered. */
const CLIENT_ERRORS: Readonly<Record<string, { status: number; code: string; words: (limits: SlowClientLimits) => string }>> = {
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'REQUEST_TIMEOUT',
    words: ({ headersTimeoutMs, requestTimeoutMs }) =>
      `the request did not arrive in time: its headers are due within ${headersTimeoutMs / 1000} s and all of it within ${requestTimeoutMs / 1000} s`,
  },
  HPE_HEADER_OVERFLOW: { status: 431, code: 'HEADERS_TOO_LARGE', words: () => 'the request headers are too large' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, code: 'TOO_LARGE', words: () => 'the chunk extensions are too large' },
};

/** An HTTP server for `app` that refuses slow clients on time. It does not listen. */
export function createHttpServer(app: RequestListener, limits: SlowClientLimits = SLOW_CLIENT_LIMITS): Server {
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
    },
    app,
  );
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => answerClientError(error, socket, limits));
  return server;
}

/**
 * What Node's own handler does (lib/_http_server.js, socketOnError), with a
 * JSON body: answer unless a response is already under way or the peer has
 * gone, then close. The socket is destroyed once the answer is flushed: an
 * HTTP server's sockets are half-open, and a slow client must not keep one.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex, limits: SlowClientLimits): void {
  // Node keeps the response in flight on the socket; only its own handler reads it otherwise.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const known = CLIENT_ERRORS[error.code ?? ''];
  const status = known?.status ?? 400;
  const body = JSON.stringify({
    error: known?.words(limits) ?? `the request is not valid HTTP (${error.code ?? 'parse error'})`,
    code: known?.code ?? 'BAD_HTTP',
  });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}
