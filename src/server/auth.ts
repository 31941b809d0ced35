/**
 * Bearer-token checks (SPEC sections 2 and 9). Tokens are compared in
 * constant time over their SHA-256 digests, so neither the content nor the
 * length of the expected token leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { UnauthorizedError } from '../shared/errors.js';

/** `Authorization: Bearer <t>` (scheme case-insensitive); more schemes may be allowed, e.g. InfluxDB's `Token`. */
export function requireToken(token: string | undefined, schemes: readonly string[] = ['bearer']): RequestHandler {
  const check = createTokenCheck(token, schemes);
  if (check === undefined) return (_req, _res, next) => next();
  return (req, _res, next) => next(check(req.headers.authorization));
}

/**
 * The check behind `requireToken`, for a handler that runs its checks
 * itself: given the Authorization header, the error to answer with, or
 * undefined when the token is right. Undefined altogether when no token is set.
 */
export function createTokenCheck(token: string | undefined, schemes: readonly string[] = ['bearer']): ((authorization: string | undefined) => UnauthorizedError | undefined) | undefined {
  if (token === undefined) return undefined;
  const expected = digest(token);
  const allowed = new Set(schemes.map((scheme) => scheme.toLowerCase()));
  return (authorization) => {
    const header = authorization ?? '';
    const space = header.indexOf(' ');
    const scheme = header.slice(0, Math.max(0, space)).toLowerCase();
    const presented = header.slice(space + 1).trim();
    if (space <= 0 || !allowed.has(scheme) || !timingSafeEqual(digest(presented), expected)) {
      return new UnauthorizedError(header === '' ? 'this route needs Authorization: Bearer <token>' : 'the token is wrong');
    }
    return undefined;
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Like `requireToken` (Bearer), but the token may also come as `?token=`:
 * EventSource and a download link cannot send headers. The request log
 * records `req.path`, never the query, so the token stays out of the logs.
 */
export function requireTokenOrQuery(token: string | undefined): RequestHandler {
  const fromHeader = requireToken(token);
  if (token === undefined) return fromHeader;
  const expected = digest(token);
  return (req, res, next) => {
    const presented = req.query.token;
    if (presented === undefined || req.headers.authorization !== undefined) return fromHeader(req, res, next);
    if (typeof presented !== 'string' || !timingSafeEqual(digest(presented), expected)) {
      return next(new UnauthorizedError('the token is wrong'));
    }
    next();
  };
}
