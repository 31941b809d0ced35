/** A wait that can be cut short: a loop pauses on it, and new work or a stop wakes it at once. */
export interface Pause {
  /** Resolves after `ms`, or sooner at `wake()`. */
  wait(ms: number): Promise<void>;
  /** Ends the wait under way, if any. */
  wake(): void;
}

export function createPause(): Pause {
  let wakeUp: (() => void) | undefined;
  return {
    wait: (ms) =>
      new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done(): void {
          clearTimeout(timer);
          wakeUp = undefined;
          resolve();
        }
        wakeUp = done;
      }),
    wake: () => wakeUp?.(),
  };
}
