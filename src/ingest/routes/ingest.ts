/**
 * `POST /<stream>`: a JSON object or array, a form, or NDJSON, chosen by
 * Content-Type, gzip or not (SPEC sections 3 and 8).
 */
import type { Request, RequestHandler } from 'express';
import { requireToken } from '../../server/auth.js';
import { NotFoundError, UnsupportedMediaTypeError } from '../../shared/errors.js';
import { parseFormBody } from '../formats/form-body.js';
import { parseJsonBody } from '../formats/json-body.js';
import { parseNdjsonBody } from '../formats/ndjson-body.js';
import { decodeUtf8 } from '../formats/text.js';
import type { Reading, ReadingLimits } from '../../storage/reading.js';
import type { IngestConfig, IngestPipeline, IngestRoute } from './ingest-pipeline.js';

type BodyParser = (text: string, limits: ReadingLimits) => Reading[];

const PARSERS: ReadonlyMap<string, BodyParser> = new Map<string, BodyParser>([
  ['application/json', parseJsonBody],
  ['application/x-www-form-urlencoded', parseFormBody],
  ['application/x-ndjson', parseNdjsonBody],
  ['application/ndjson', parseNdjsonBody],
]);
const ACCEPTED = 'send application/json, application/x-www-form-urlencoded or application/x-ndjson';

const streamPath: IngestRoute = {
  // The route matches only configured streams' paths (`/data`, or `/data/`).
  streamOf: (req) => {
    const path = req.path;
    return path.slice(1, path.endsWith('/') ? -1 : undefined);
  },
  routeOf: (_req, stream) => `/${stream}`,
  tokenSchemes: [],
  answer: (rows, durable) => (durable ? { status: 201, body: { status: 'stored', rows } } : { status: 202, body: { status: 'queued', rows } }),
};

/** The streams' own paths and their one handler: the hot path, for the app to mount first. */
export interface IngestRoutes {
  readonly paths: string[];
  readonly handler: RequestHandler;
}

/**
 * The streams' own paths, matched before any other route (on the app itself,
 * not in a nested router: one router pass a request). No stream can shadow a
 * fixed path (config refuses those names).
 */
export function createIngestRoutes(pipeline: IngestPipeline, streams: readonly string[], limits: ReadingLimits, now: () => number): IngestRoutes {
  return {
    paths: streams.map((stream) => `/${stream}`),
    handler: pipeline.handler(streamPath, async (req, res) => {
      const parse = parserFor(req);
      const body = await pipeline.readBody(req, res);
      const receivedAt = now();
      const readings = parse(decodeUtf8(body), limits);
      await pipeline.accept(req, res, streamPath, streamPath.streamOf(req) as string, readings, receivedAt);
    }),
  };
}

/**
 * Any other one-segment path, after the fixed routes: a stream that does not
 * exist. With INGEST_TOKEN set the token is checked first (SPEC section 9: 401 before 404).
 */
export function unknownStream(config: Pick<IngestConfig, 'streams' | 'ingestToken'>): RequestHandler[] {
  return [
    requireToken(config.ingestToken),
    (req) => {
      throw new NotFoundError(`no stream named '${req.path.slice(1)}'; this server takes ${config.streams.join(', ')}`);
    },
  ];
}

function parserFor(req: Request): BodyParser {
  const type = req.headers['content-type'];
  // Most senders send exactly `application/json`: found without cutting the header apart.
  const parser = (type === undefined ? undefined : PARSERS.get(type)) ?? PARSERS.get(type?.split(';', 1)[0]?.trim().toLowerCase() ?? '');
  if (parser === undefined) {
    throw new UnsupportedMediaTypeError(type === undefined ? `Content-Type is missing; ${ACCEPTED}` : `Content-Type '${type}' is not supported; ${ACCEPTED}`);
  }
  return parser;
}
