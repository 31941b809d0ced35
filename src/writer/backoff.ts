/**
 * Retry delays: exponential from the base, capped, with jitter so that two
 * processes that failed together do not retry in lockstep (the "equal jitter"
 * of https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 */
export interface BackoffOptions {
  readonly baseSec: number;
  readonly maxSec: number;
}

/** Delay in ms before retry number `retry` (1 for the first retry); `random` is in [0, 1). */
export function retryDelayMs(retry: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxSec, options.baseSec * 2 ** (retry - 1)) * 1000;
  return ceiling / 2 + random() * (ceiling / 2);
}
