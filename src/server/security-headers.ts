/**
 * Security headers on every answer, errors included: helmet's, worked out
 * once at start-up and then set from a list. helmet runs a dozen middleware
 * functions a request to set the same fixed headers; on the ingest path that
 * was a sixth of a request's time.
 *
 * The pages have no inline script, so helmet's default Content-Security-Policy
 * fits them, but for upgrade-insecure-requests: the server speaks plain HTTP
 * on the LAN, and browsers would fetch the dashboard's script over https and
 * fail (https://github.com/helmetjs/helmet/issues/480).
 */
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

export interface SecurityHeaders {
  /** Sets the headers on every answer. */
  readonly middleware: RequestHandler;
  /** Sets the headers on one answer (for routes that run before the middleware). */
  apply(res: ServerResponse): void;
  /** Name, value, name, value, …: for `res.writeHead(status, [...headers, …])`. */
  readonly flat: readonly string[];
}

export function createSecurityHeaders(): SecurityHeaders {
  const headers = helmetHeaders();
  const flat = headers.flat();
  const apply = (res: ServerResponse): void => {
    for (const [name, value] of headers) res.setHeader(name, value);
  };
  return {
    middleware: (_req, res, next) => {
      apply(res);
      next();
    },
    apply,
    flat,
  };
}

/** The headers helmet sets, read by running it once on a stand-in answer. */
function helmetHeaders(): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  let ran = false;
  const middleware = helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } });
  const stand = {
    setHeader: (name: string, value: string) => headers.push([name, value]),
    // X-Powered-By: Express's own, turned off in the app.
    removeHeader: () => undefined,
  };
  middleware({} as never, stand as never, (error?: unknown) => {
    if (error !== undefined) throw error as Error;
    ran = true;
  });
  // helmet sets fixed headers at once; one that depended on the request or came later would be missed.
  if (!ran || headers.length === 0) throw new Error('helmet did not set its headers at once');
  return headers;
}
