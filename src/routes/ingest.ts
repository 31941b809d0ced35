/**
 * `POST /<stream>`: a JSON object or array, a form, or NDJSON, chosen by
 * Content-Type, gzip or not (SPEC sections 3 and 8).
 */
import { type Request, Router } from 'express';
import { UnsupportedMediaTypeError } from '../errors.js';
import { parseFormBody } from '../formats/form-body.js';
import { parseJsonBody } from '../formats/json-body.js';
import { parseNdjsonBody } from '../formats/ndjson-body.js';
import { decodeUtf8 } from '../formats/text.js';
import type { Reading, ReadingLimits } from '../reading.js';
import type { IngestPipeline, IngestRoute } from './ingest-pipeline.js';

type BodyParser = (text: string, limits: ReadingLimits) => Reading[];

const PARSERS: ReadonlyMap<string, BodyParser> = new Map<string, BodyParser>([
  ['application/json', parseJsonBody],
  ['application/x-www-form-urlencoded', parseFormBody],
  ['application/x-ndjson', parseNdjsonBody],
  ['application/ndjson', parseNdjsonBody],
]);
const ACCEPTED = 'send application/json, application/x-www-form-urlencoded or application/x-ndjson';

const streamPath: IngestRoute = {
  streamOf: (req) => req.params.stream as string | undefined,
  routeOf: (_req, stream) => `/${stream}`,
  tokenSchemes: [],
  answer: (rows, durable) => (durable ? { status: 201, body: { status: 'stored', rows } } : { status: 202, body: { status: 'queued', rows } }),
};

export function createIngestRouter(pipeline: IngestPipeline, limits: ReadingLimits, now: () => number): Router {
  const router = Router();
  router.all('/:stream', ...pipeline.guard(streamPath), async (req, res) => {
    const parse = parserFor(req);
    const body = await pipeline.readBody(req, res);
    const receivedAt = now();
    const readings = parse(decodeUtf8(body), limits);
    await pipeline.accept(req, res, streamPath, req.params.stream as string, readings, receivedAt);
  });
  return router;
}

function parserFor(req: Request): BodyParser {
  const type = req.headers['content-type'];
  const parser = PARSERS.get(type?.split(';', 1)[0]?.trim().toLowerCase() ?? '');
  if (parser === undefined) {
    throw new UnsupportedMediaTypeError(type === undefined ? `Content-Type is missing; ${ACCEPTED}` : `Content-Type '${type}' is not supported; ${ACCEPTED}`);
  }
  return parser;
}
