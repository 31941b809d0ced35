#!/usr/bin/env node
/**
 * The reference server for `npm run bench`: the least a Node process must do
 * to take sensor readings durably, so the bench can say how close
 * sensor-ingest comes to what Node can do on this machine.
 *
 *   POST /<stream> ─► parse JSON ─► CSV line(s) ─► append to the file's buffer ─► 202
 *                                                        │
 *   flusher (no timer: the next flush starts as soon as the last one ends)
 *     each file with pending text: swap its buffer ─► one write ─► one fsync ─► 201s it covered
 *
 * What it leaves out on purpose: locks, schema widening, quoting beyond RFC
 * 4180, limits, metrics, logs, history. Flat readings only (nested values are
 * written as their JSON text). It is a yardstick, not a product.
 *
 *   PORT=0 HOST=127.0.0.1 DATA_DIR=/tmp/x ACK_MODE=durable node bench/reference-server.mjs
 *
 * GET /healthz answers 200; GET /metrics answers `reference_fsync_total N`
 * (and `reference_rows_written_total N`) in Prometheus text. SIGTERM stops
 * accepting, flushes everything, and exits 0.
 */
import { mkdirSync, openSync, write, fsync, closeSync, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const port = Number(process.env.PORT ?? 8889);
const host = process.env.HOST ?? '127.0.0.1';
const dataDir = process.env.DATA_DIR ?? './data-reference';
const durableByDefault = process.env.ACK_MODE === 'durable';
const STREAM = /^\/([a-z0-9_-]{1,64})(\?.*)?$/;
const NEEDS_QUOTES = /[",\r\n]/;

mkdirSync(dataDir, { recursive: true });

/** Per file: its fd, header columns, the text waiting for the next flush, and who waits for its fsync. */
const files = new Map();
let fsyncs = 0;
let rowsWritten = 0;
let flushing = false;
let closing = false;
let onIdle = null;

function fileFor(stream) {
  let file = files.get(stream);
  if (file === undefined) {
    const path = join(dataDir, `${stream}.csv`);
    const fresh = !existsSync(path) || statSync(path).size === 0;
    file = { fd: openSync(path, 'a'), columns: null, fresh, text: '', rows: 0, waiters: [] };
    files.set(stream, file);
  }
  return file;
}

function cell(value) {
  const text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Appends one reading's line; the first reading of a new file fixes its header. */
function append(file, reading, receivedAt) {
  if (file.columns === null) {
    file.columns = Object.keys(reading);
    if (file.fresh) file.text += `received_at,${file.columns.map(cell).join(',')}\n`;
  }
  let line = receivedAt;
  for (const column of file.columns) line += `,${cell(reading[column])}`;
  file.text += `${line}\n`;
  file.rows++;
}

function writeAll(fd, buffer) {
  return new Promise((resolve, reject) => {
    const step = (offset) =>
      write(fd, buffer, offset, buffer.length - offset, null, (error, written) => {
        if (error) return reject(error);
        if (offset + written < buffer.length) return step(offset + written);
        resolve();
      });
    step(0);
  });
}

const fsyncFd = (fd) => new Promise((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));

/** One flush: every file with pending text gets one write and one fsync (files in parallel). */
async function flushOnce() {
  const work = [];
  for (const file of files.values()) {
    if (file.text === '') continue;
    const buffer = Buffer.from(file.text, 'utf8');
    const { waiters, rows } = file;
    file.text = '';
    file.rows = 0;
    file.waiters = [];
    work.push(
      (async () => {
        await writeAll(file.fd, buffer);
        await fsyncFd(file.fd);
        fsyncs++;
        rowsWritten += rows;
        for (const resolve of waiters) resolve();
      })(),
    );
  }
  await Promise.all(work);
}

/** Runs flushes back to back while anything is pending; no timer. */
function kick() {
  if (flushing) return;
  flushing = true;
  (async () => {
    try {
      while ([...files.values()].some((file) => file.text !== '')) await flushOnce();
    } catch (error) {
      process.stderr.write(`reference-server: flush failed: ${error.message}\n`);
      process.exit(1);
    }
    flushing = false;
    if (onIdle !== null) onIdle();
  })();
}

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return answer(res, 200, { status: 'ok' });
  if (req.method === 'GET' && req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end(`reference_fsync_total ${fsyncs}\nreference_rows_written_total ${rowsWritten}\n`);
  }
  const match = req.method === 'POST' ? STREAM.exec(req.url ?? '') : null;
  if (match === null) return answer(res, 404, { error: 'not found' });
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (closing) return answer(res, 503, { error: 'shutting down' });
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return answer(res, 400, { error: 'bad json' });
    }
    const readings = Array.isArray(body) ? body : [body];
    if (readings.length === 0 || readings.some((r) => r === null || typeof r !== 'object' || Array.isArray(r))) {
      return answer(res, 400, { error: 'bad shape' });
    }
    const file = fileFor(match[1]);
    const receivedAt = new Date().toISOString();
    for (const reading of readings) append(file, reading, receivedAt);
    const durable = match[2]?.includes('ack=durable') || durableByDefault;
    if (durable) file.waiters.push(() => answer(res, 201, { status: 'stored', rows: readings.length }));
    kick();
    if (!durable) answer(res, 202, { status: 'queued', rows: readings.length });
  });
});

server.listen(port, host, () => {
  const { port: bound } = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'reference server started', port: bound, durable: durableByDefault })}\n`);
});

/** Resolves once nothing is pending and no flush runs. */
function drained() {
  const pending = () => flushing || [...files.values()].some((file) => file.text !== '');
  if (!pending()) return Promise.resolve();
  return new Promise((resolve) => {
    onIdle = () => {
      if (!pending()) resolve();
    };
    kick();
  });
}

// Like sensor-ingest: stop accepting, let requests in flight finish (durable
// ones wait for their fsync), write everything pending, exit 0.
process.once('SIGTERM', () => {
  closing = true;
  const idleCloser = setInterval(() => server.closeIdleConnections(), 50);
  server.close(async () => {
    clearInterval(idleCloser);
    await drained();
    for (const file of files.values()) closeSync(file.fd);
    process.exit(0);
  });
  server.closeIdleConnections();
});
