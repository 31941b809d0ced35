/**
 * The project runs on Node 20, 22 and 24, the LTS lines (package.json
 * "engines"), so every package it installs
 * must say it runs there too. This guards an upgrade:
 * @nats-io/transport-node 3.4.0 pulled in @nats-io/nuid 3.0.0, which asks for
 * Node 22, and npm ci on a Pi with Node 20 warned about it (EBADENGINE).
 * The test tools (vitest 4, vite) need Node 20.19, which the README says.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/paths.js';

interface LockedPackage {
  version?: string;
  dev?: boolean;
  engines?: { node?: string };
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockedPackage> };
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };

/** Locked packages (of the kind asked for) whose engines.node rejects `nodeVersion`. */
function refusing(nodeVersion: string, which: 'production' | 'all', packages = lock.packages): string[] {
  return Object.entries(packages)
    .filter(([path, entry]) => path !== '' && (which === 'all' || entry.dev !== true))
    .filter(([, entry]) => entry.engines?.node !== undefined && !semver.satisfies(nodeVersion, entry.engines.node))
    .map(([path, entry]) => `${path}@${entry.version ?? '?'} wants node ${entry.engines?.node ?? ''}`);
}

describe('Node versions', () => {
  it('package.json names Node 20, 22 and 24, from 20.0 on', () => {
    expect(semver.minVersion(pkg.engines.node)?.version).toBe('20.0.0');
    for (const version of ['20.0.0', '20.19.2', '22.12.0', '24.0.0', '24.22.3']) expect(semver.satisfies(version, pkg.engines.node), version).toBe(true);
    for (const version of ['18.20.0', '21.7.0', '23.11.0']) expect(semver.satisfies(version, pkg.engines.node), version).toBe(false);
  });

  it('every production package runs on Node 22.0 and 24.0; the test tools on 22.13 (eslint 10) and 24.0', () => {
    expect(refusing('22.0.0', 'production')).toEqual([]);
    expect(refusing('24.0.0', 'production')).toEqual([]);
    expect(refusing('22.13.0', 'all')).toEqual([]);
    expect(refusing('24.0.0', 'all')).toEqual([]);
  });

  it('every production package runs on Node 20.0 and later', () => {
    expect(refusing('20.0.0', 'production')).toEqual([]);
  });

  it('every package, the test tools included, runs on Node 20.19', () => {
    expect(refusing('20.19.0', 'all')).toEqual([]);
  });

  it('the check finds the package that once wanted Node 22, and passes over dev-only ones for production', () => {
    const packages: Record<string, LockedPackage> = {
      '': { engines: { node: '>=20' } },
      'node_modules/@nats-io/nuid': { version: '3.0.0', engines: { node: '>= 22.x' } },
      'node_modules/vite': { version: '8.0.0', dev: true, engines: { node: '^20.19.0 || >=22.12.0' } },
      'node_modules/express': { version: '5.3.0', engines: { node: '>= 18' } },
    };
    expect(refusing('20.19.0', 'all', packages)).toEqual(['node_modules/@nats-io/nuid@3.0.0 wants node >= 22.x']);
    expect(refusing('20.0.0', 'production', packages)).toEqual(['node_modules/@nats-io/nuid@3.0.0 wants node >= 22.x']);
    expect(refusing('20.0.0', 'all', packages)).toHaveLength(2);
  });
});
