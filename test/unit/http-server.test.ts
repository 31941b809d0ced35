/**
 * The server both programs listen with answers what Node refuses before any
 * route runs (a request too slow, headers too large, bytes that are not HTTP)
 * in JSON, like every other error, and closes the socket. Short limits here;
 * test/e2e/slow-client.test.ts holds the built server to the real ones.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SLOW_CLIENT_LIMITS, createHttpServer } from '../../src/server/http-server.js';

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

async function listening(): Promise<number> {
  server = createHttpServer((_req, res) => res.end('ok'), { headersTimeoutMs: 200, requestTimeoutMs: 400, checkIntervalMs: 50 });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

/** Sends `text` and resolves with the status and JSON body the server answered before it closed the socket. */
async function exchange(port: number, text: string): Promise<{ status: number; type: string; body: unknown }> {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => {}); // the server may reset after its answer
  socket.write(text);
  await once(socket, 'close');
  const [head = '', body = ''] = received.split('\r\n\r\n');
  const type = /content-type: ([^\r]*)/i.exec(head)?.[1] ?? '';
  return { status: Number(head.split(' ')[1]), type, body: JSON.parse(body) as unknown };
}

describe('createHttpServer', () => {
  it('keeps SPEC section 11\'s limits by default: headers 10 s, the request 30 s, checked every second', () => {
    expect(SLOW_CLIENT_LIMITS).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, checkIntervalMs: 1_000 });
    const defaults = createHttpServer(() => {});
    expect([defaults.headersTimeout, defaults.requestTimeout]).toEqual([10_000, 30_000]);
  });

  it('answers a request whose headers never end with a JSON 408', async () => {
    const port = await listening();
    expect(await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n')).toEqual({
      status: 408,
      type: 'application/json; charset=utf-8',
      body: { error: 'the request did not arrive in time: its headers are due within 0.2 s and all of it within 0.4 s', code: 'REQUEST_TIMEOUT' },
    });
  });

  it('answers headers too large with a JSON 431, and bytes that are not HTTP with a JSON 400', async () => {
    const port = await listening();
    expect(await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)).toMatchObject({
      status: 431,
      body: { error: 'the request headers are too large', code: 'HEADERS_TOO_LARGE' },
    });
    expect(await exchange(port, 'HELLO THERE\r\n\r\n')).toMatchObject({ status: 400, body: { code: 'BAD_HTTP' } });
  });
});
