#!/usr/bin/env node
/**
 * The bare Express 5 reference server for `npm run bench`: the same write
 * path as the plain one (bench/reference-write-path.mjs, shared with
 * bench/reference-server.mjs), behind the least Express app that serves it,
 * so the bench can say how close sensor-ingest comes to what Express itself
 * allows on this machine.
 *
 *   express() ─► app.post('/:stream') ─► body read from the request stream ─► JSON.parse
 *     ─► CSV line(s) ─► the file's buffer ─► res.status(202).json(...)
 *     (durable: res.status(201).json(...) after the covering fsync)
 *
 * Only what an Express app of this kind would do anyway: x-powered-by and
 * ETags off, no middleware at all (no body parser: the handler reads the body
 * itself, as the plain server does), res.json for every answer. It is a
 * yardstick, not a product.
 *
 *   PORT=0 HOST=127.0.0.1 DATA_DIR=/tmp/x ACK_MODE=durable node bench/express-reference.mjs
 *
 * GET /healthz answers 200; GET /metrics answers `reference_fsync_total N`
 * (and `reference_rows_written_total N`) in Prometheus text; anything else is
 * a JSON 404. SIGTERM stops accepting, flushes everything, and exits 0.
 */
import express from 'express';
import { STREAM_NAME, createWritePath, settingsFromEnv } from './reference-write-path.mjs';

const { port, host, dataDir, durableByDefault } = settingsFromEnv({ port: 8890, dataDir: './data-express-reference' });
const writePath = createWritePath({ dataDir, durableByDefault, name: 'express-reference' });

const app = express();
app.disable('x-powered-by');
app.set('etag', false);

app.get('/healthz', (_req, res) => {
  res.status(200).json({ status: 'ok' });
});
app.get('/metrics', (_req, res) => {
  res.status(200).type('text/plain').send(writePath.metricsText());
});
app.post('/:stream', (req, res, next) => {
  const { stream } = req.params;
  if (!STREAM_NAME.test(stream)) return next();
  const durable = req.query.ack === 'durable';
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => writePath.accept(stream, Buffer.concat(chunks), durable, (status, body) => res.status(status).json(body)));
});
app.use((_req, res) => {
  res.status(404).json({ error: 'not found' });
});

const server = app.listen(port, host, (error) => {
  if (error) throw error;
  const { port: bound } = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'express reference server started', port: bound, durable: durableByDefault })}\n`);
});

writePath.stopOnSigterm(server);
