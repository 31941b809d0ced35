/**
 * The write path the bench's two reference servers share
 * (bench/reference-server.mjs on plain node:http, bench/express-reference.mjs
 * on bare Express 5): the least a Node process must do to take sensor
 * readings durably, so that the two differ only in the HTTP layer.
 *
 *   request body ─► parse JSON ─► CSV line(s) ─► append to the file's buffer ─► 202
 *                                                        │
 *   flusher (no timer: the next flush starts as soon as the last one ends)
 *     each file with pending text: swap its buffer ─► one write ─► one fsync ─► 201s it covered
 *
 * What it leaves out on purpose: locks, schema widening, quoting beyond RFC
 * 4180, limits, metrics, logs, history. Flat readings only (nested values are
 * written as their JSON text). It is a yardstick, not a product.
 *
 * Nothing here knows HTTP beyond status codes: the server hands over the
 * stream name, the body's bytes and a `reply(status, body)` that sends a JSON
 * answer its own way.
 */
import { closeSync, existsSync, fsync, mkdirSync, openSync, statSync, write } from 'node:fs';
import { join } from 'node:path';

/** A stream name: what both servers accept as the one path segment of POST /<stream>. */
export const STREAM_NAME = /^[a-z0-9_-]{1,64}$/;
const NEEDS_QUOTES = /[",\r\n]/;

/** The settings both servers take from the environment: PORT, HOST, DATA_DIR, ACK_MODE. */
export function settingsFromEnv({ port, dataDir }) {
  return {
    port: Number(process.env.PORT ?? port),
    host: process.env.HOST ?? '127.0.0.1',
    dataDir: process.env.DATA_DIR ?? dataDir,
    durableByDefault: process.env.ACK_MODE === 'durable',
  };
}

function cell(value) {
  const text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
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

/**
 * The write path over `dataDir` (made if missing). `name` prefixes the
 * message on stderr when a flush fails (the process then exits 1).
 */
export function createWritePath({ dataDir, durableByDefault, name }) {
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

  const pending = () => [...files.values()].some((file) => file.text !== '');

  /** Runs flushes back to back while anything is pending; no timer. */
  function kick() {
    if (flushing) return;
    flushing = true;
    (async () => {
      try {
        while (pending()) await flushOnce();
      } catch (error) {
        process.stderr.write(`${name}: flush failed: ${error.message}\n`);
        process.exit(1);
      }
      flushing = false;
      if (onIdle !== null) onIdle();
    })();
  }

  /**
   * One POST /<stream> whose whole body has arrived: answers through
   * `reply(status, body)` with 503 while closing, 400 for bad JSON or a bad
   * shape, else 202 at once or (durable) 201 after the fsync that covers it.
   */
  function accept(stream, bodyBytes, durable, reply) {
    if (closing) return reply(503, { error: 'shutting down' });
    let body;
    try {
      body = JSON.parse(bodyBytes.toString('utf8'));
    } catch {
      return reply(400, { error: 'bad json' });
    }
    const readings = Array.isArray(body) ? body : [body];
    if (readings.length === 0 || readings.some((r) => r === null || typeof r !== 'object' || Array.isArray(r))) {
      return reply(400, { error: 'bad shape' });
    }
    const file = fileFor(stream);
    const receivedAt = new Date().toISOString();
    for (const reading of readings) append(file, reading, receivedAt);
    if (durable || durableByDefault) file.waiters.push(() => reply(201, { status: 'stored', rows: readings.length }));
    kick();
    if (!(durable || durableByDefault)) reply(202, { status: 'queued', rows: readings.length });
  }

  /** GET /metrics's text (Prometheus exposition). */
  const metricsText = () => `reference_fsync_total ${fsyncs}\nreference_rows_written_total ${rowsWritten}\n`;

  /** Resolves once nothing is pending and no flush runs. */
  function drained() {
    const busy = () => flushing || pending();
    if (!busy()) return Promise.resolve();
    return new Promise((resolve) => {
      onIdle = () => {
        if (!busy()) resolve();
      };
      kick();
    });
  }

  /**
   * Like sensor-ingest on SIGTERM: stop accepting (`server` is the
   * node:http server underneath), let requests in flight finish (durable ones
   * wait for their fsync; bodies that end from now on get a 503), write
   * everything pending, close the files, exit 0.
   */
  function stopOnSigterm(server) {
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
  }

  return { accept, metricsText, drained, stopOnSigterm };
}
