/**
 * Health endpoints (SPEC section 6): `/healthz` is always fast, `/livez` says
 * the process answers, `/readyz` says whether rows can reach disk now.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { Router } from 'express';
import type { Writer } from '../writer/writer.js';
import type { DiskSpace } from './disk-space.js';
import { refuseOtherMethods } from './other-methods.js';

export interface OpsDeps {
  readonly version: string;
  readonly dataDir: string;
  readonly disk: Pick<DiskSpace, 'freeBytes' | 'minFreeBytes'>;
  readonly writer: Writer;
  readonly now: () => number;
  /** When the process started, in epoch ms. */
  readonly startedAt: number;
  /** More `/readyz` checks (NATS, for the forwarder and the collector). */
  readonly readyChecks?: () => Record<string, ReadyCheck>;
}

export interface ReadyCheck {
  readonly ok: boolean;
  readonly [detail: string]: unknown;
}

export function createOpsRouter(deps: OpsDeps): Router {
  const { writer } = deps;
  const router = Router();

  router.get('/healthz', (_req, res) => {
    const now = deps.now();
    res.json({
      status: 'ok',
      version: deps.version,
      uptime_s: Math.round((now - deps.startedAt) / 1000),
      timestamp: new Date(now).toISOString(),
    });
  });

  router.get('/livez', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const dataDirWritable = await access(deps.dataDir, constants.W_OK).then(
      () => true,
      () => false,
    );
    // SPEC section 12: ready only with room on the disk (ingest itself goes on until it is really full).
    const freeBytes = await deps.disk.freeBytes().catch(() => null);
    const roomy = freeBytes !== null && freeBytes >= deps.disk.minFreeBytes;
    const alive = writer.isAlive();
    const checks = {
      writer: { ok: alive && !writer.stalled, alive, stalled: writer.stalled, hung: writer.hung },
      data_dir: { ok: dataDirWritable && roomy, path: deps.dataDir, free_bytes: freeBytes, min_free_bytes: deps.disk.minFreeBytes },
      queue: {
        ok: writer.length < writer.capacity && writer.bytes < writer.capacityBytes,
        length: writer.length,
        max: writer.capacity,
        bytes: writer.bytes,
        max_bytes: writer.capacityBytes,
      },
      ...deps.readyChecks?.(),
    };
    const ok = Object.values(checks).every((check) => check.ok);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'error', checks });
  });

  refuseOtherMethods(router, ['/healthz', '/livez', '/readyz']);
  return router;
}
