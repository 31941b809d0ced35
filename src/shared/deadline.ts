/**
 * Waits for `work` at most `ms` milliseconds: true if it settled (either
 * way) in time, so a shutdown step that hangs cannot hold the process past
 * SHUTDOWN_TIMEOUT_SEC. The timer is cleared as soon as either comes.
 */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A deadline `ms` from now, and how long is left of it (never below 0). */
export function deadlineIn(ms: number, now: () => number = Date.now): () => number {
  const at = now() + ms;
  return () => Math.max(0, at - now());
}
