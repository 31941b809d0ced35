/** What in-process tests build a writer from: a config with test defaults, and a runner that holds batches. */
import { join } from 'node:path';
import { type Config, loadConfig } from '../../src/shared/config.js';
import type { BatchResult } from '../../src/writer/task.js';
import { type BatchRunner, createInlineRunner } from '../../src/writer/runners.js';

/** A config with test-friendly defaults and the given overrides (as environment strings). */
export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({ DATA_DIR: dataDir, LOG_DIR: join(dataDir, 'logs'), ...env });
}

/** A runner that holds every batch until released: the queue fills as a stalled disk would fill it. */
export function heldRunner(): BatchRunner & { release: () => void } {
  const inline = createInlineRunner();
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  return { ...inline, run: async (task): Promise<BatchResult> => (await gate, inline.run(task)), release: () => open() };
}
