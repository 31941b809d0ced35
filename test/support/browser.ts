/**
 * Debian's Chromium under playwright-core, for the dashboard's browser test.
 * The flags keep a headless Chromium from reaching for the network (the test
 * machine has none, and Chromium would hang on its background connections);
 * `--host-resolver-rules` lets the page be opened by a LAN-like host name.
 */
import { existsSync } from 'node:fs';
import { type BrowserContext, chromium } from 'playwright-core';
import { tempDir } from './temp-dir.js';

export const CHROMIUM = '/usr/bin/chromium';
/** The host name the test opens the dashboard at: not localhost, which browsers treat as secure. */
export const LAN_HOST = 'sensor-pi.test';

/** Whether the browser test can run; in CI it must (`.ci/run` installs chromium). */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing, and CI must run the browser test: install Debian's chromium package (.ci/run does)`);
  return false;
}

export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = tempDir('sensor-ingest-chromium-');
  const context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--host-resolver-rules=MAP ${LAN_HOST} 127.0.0.1`,
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      profile.cleanup();
    },
  };
}
