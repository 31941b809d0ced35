/**
 * Bearer-token checks (SPEC sections 2 and 9). Tokens are compared in
 * constant time over their SHA-256 digests, so neither the content nor the
 * length of the expected token leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { UnauthorizedError } from './errors.js';

/** `Authorization: Bearer <t>` (scheme case-insensitive); more schemes may be allowed, e.g. InfluxDB's `Token`. */
export function requireToken(token: string | undefined, schemes: readonly string[] = ['bearer']): RequestHandler {
  if (token === undefined) return (_req, _res, next) => next();
  const expected = digest(token);
  const allowed = new Set(schemes.map((scheme) => scheme.toLowerCase()));
  return (req, _res, next) => {
    const header = req.headers.authorization ?? '';
    const space = header.indexOf(' ');
    const scheme = header.slice(0, Math.max(0, space)).toLowerCase();
    const presented = header.slice(space + 1).trim();
    if (space <= 0 || !allowed.has(scheme) || !timingSafeEqual(digest(presented), expected)) {
      return next(new UnauthorizedError(header === '' ? 'this route needs Authorization: Bearer <token>' : 'the token is wrong'));
    }
    next();
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
