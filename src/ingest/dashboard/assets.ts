/**
 * The dashboard's page, script and styles, and uPlot's, read once when the
 * app is built and served from memory. No CDN: a Pi is often offline.
 *
 * The hand-written files are not compiled, so they stay in
 * src/ingest/dashboard/public/, found relative to this module: from
 * src/ingest/dashboard/ when run from source (tests) and from
 * dist/ingest/dashboard/ when built, the same
 * `../../../src/ingest/dashboard/public/` (deploy/install.sh copies that folder too).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Asset {
  readonly body: Buffer;
  readonly type: string;
  /** A strong validator: browsers revalidate and get 304 while the file is unchanged. */
  readonly etag: string;
}

export const PUBLIC_DIR = fileURLToPath(new URL('../../../src/ingest/dashboard/public/', import.meta.url));

/** URL path → file. The page's own `<script>` and `<link>` tags use these paths. */
export function loadDashboardAssets(): { page: Asset; files: ReadonlyMap<string, Asset> } {
  const require = createRequire(import.meta.url);
  const load = (path: string, type: string): Asset => {
    const body = readFileSync(path);
    return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
  };
  return {
    page: load(`${PUBLIC_DIR}index.html`, 'text/html; charset=utf-8'),
    files: new Map([
      ['/dashboard/dashboard.js', load(`${PUBLIC_DIR}dashboard.js`, 'text/javascript; charset=utf-8')],
      ['/dashboard/dashboard.css', load(`${PUBLIC_DIR}dashboard.css`, 'text/css; charset=utf-8')],
      ['/dashboard/uplot.js', load(require.resolve('uplot/dist/uPlot.iife.min.js'), 'text/javascript; charset=utf-8')],
      ['/dashboard/uplot.css', load(require.resolve('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8')],
    ]),
  };
}
