#!/usr/bin/env node
/**
 * The plain reference server for `npm run bench`: the least a Node process
 * must do to take sensor readings durably, on node:http with nothing in
 * between, so the bench can say how close sensor-ingest comes to what Node
 * can do on this machine.
 *
 *   POST /<stream> ─► parse JSON ─► CSV line(s) ─► append to the file's buffer ─► 202
 *                                                        │
 *   flusher (no timer: the next flush starts as soon as the last one ends)
 *     each file with pending text: swap its buffer ─► one write ─► one fsync ─► 201s it covered
 *
 * The write path is bench/reference-write-path.mjs, shared with
 * bench/express-reference.mjs (the same on bare Express 5); this file is the
 * HTTP part only. It leaves out on purpose: locks, schema widening, quoting
 * beyond RFC 4180, limits, metrics, logs, history. It is a yardstick, not a
 * product.
 *
 *   PORT=0 HOST=127.0.0.1 DATA_DIR=/tmp/x ACK_MODE=durable node bench/reference-server.mjs
 *
 * GET /healthz answers 200; GET /metrics answers `reference_fsync_total N`
 * (and `reference_rows_written_total N`) in Prometheus text. SIGTERM stops
 * accepting, flushes everything, and exits 0.
 */
import { createServer } from 'node:http';
import { createWritePath, settingsFromEnv } from './reference-write-path.mjs';

const { port, host, dataDir, durableByDefault } = settingsFromEnv({ port: 8889, dataDir: './data-reference' });
const STREAM = /^\/([a-z0-9_-]{1,64})(\?.*)?$/;
const writePath = createWritePath({ dataDir, durableByDefault, name: 'reference-server' });

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return answer(res, 200, { status: 'ok' });
  if (req.method === 'GET' && req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end(writePath.metricsText());
  }
  const match = req.method === 'POST' ? STREAM.exec(req.url ?? '') : null;
  if (match === null) return answer(res, 404, { error: 'not found' });
  const durable = match[2]?.includes('ack=durable') ?? false;
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => writePath.accept(match[1], Buffer.concat(chunks), durable, (status, body) => answer(res, status, body)));
});

server.listen(port, host, () => {
  const { port: bound } = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'reference server started', port: bound, durable: durableByDefault })}\n`);
});

writePath.stopOnSigterm(server);
