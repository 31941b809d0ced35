/**
 * InfluxDB's write endpoints, so Telegraf, ESP32/Arduino InfluxDB clients and
 * Home Assistant can send here unchanged (SPEC section 8):
 * `POST /api/v2/write?bucket=<stream>` and `POST /write?db=<stream>`, with
 * `precision`; answered 204 like InfluxDB. `Authorization: Token <t>` works too.
 */
import { Router } from 'express';
import { parseLineProtocol, parsePrecision } from '../formats/line-protocol.js';
import { decodeUtf8 } from '../formats/text.js';
import type { IngestPipeline, IngestRoute } from './ingest-pipeline.js';

const route = (path: string, parameter: string): IngestRoute => ({
  streamOf: (req) => {
    const value = req.query[parameter];
    return typeof value === 'string' ? value : undefined;
  },
  routeOf: () => path,
  tokenSchemes: ['token'],
  answer: () => ({ status: 204, body: undefined }),
});

export function createLineProtocolRouter(pipeline: IngestPipeline, maxBatchRows: number, now: () => number): Router {
  const router = Router();
  for (const [path, parameter] of [
    ['/api/v2/write', 'bucket'],
    ['/write', 'db'],
  ] as const) {
    const lineProtocol = route(path, parameter);
    router.all(
      path,
      pipeline.handler(lineProtocol, async (req, res) => {
        const body = await pipeline.readBody(req, res);
        const precision = parsePrecision(req.query.precision);
        const receivedAt = now();
        const readings = parseLineProtocol(decodeUtf8(body), { precision, receivedAt, maxBatchRows });
        await pipeline.accept(req, res, lineProtocol, lineProtocol.streamOf(req) as string, readings, receivedAt);
      }),
    );
  }
  return router;
}
