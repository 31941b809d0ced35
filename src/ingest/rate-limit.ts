/**
 * RATE_LIMIT_PER_MIN with express-rate-limit: a fixed one-minute window per
 * client IP (`req.ip`, so TRUST_PROXY decides which address that is), counting
 * every request that reaches an ingest route, rejected ones included.
 */
import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { IngestError } from '../shared/errors.js';

export function createRateLimit(perMinute: number): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-6',
    legacyHeaders: false,
    // Per client IP, IPv6 included (the library's default groups IPv6 by /56: a whole LAN).
    ipv6Subnet: false,
    // TRUST_PROXY is the operator's choice; the library's console warnings about it would bypass the logger.
    validate: { trustProxy: false, xForwardedForHeader: false },
    // The app turns the rejection into the project's JSON error.
    handler: (req, _res, next) => {
      const resetTime = (req as { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      const retryAfterSec = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + 60_000) - Date.now()) / 1000));
      next(
        new IngestError(`more than ${perMinute} requests a minute from this address; retry in ${retryAfterSec} s`, 429, 'RATE_LIMITED', {
          headers: { 'Retry-After': String(retryAfterSec) },
        }),
      );
    },
  });
}
