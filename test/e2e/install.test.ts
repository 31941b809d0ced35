/**
 * deploy/install.sh (SPEC section 7), run for real twice under a temp ROOT
 * with SYSTEMCTL=true and SERVICE_USER=root: the built app with production
 * dependencies only, the directories and settings file with tight modes, the
 * unit with this machine's node, and a second run (an upgrade, from a shell
 * with NODE_ENV=production) that keeps the operator's settings.
 *
 * install.sh runs `npm ci` in its own checkout, which would rewrite this
 * checkout's node_modules under the other tests, so it runs from a copy of
 * the working tree (tracked and new files; no node_modules, dist, data, logs).
 */
import { execFile, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCsv } from '../support/csv-files.js';
import { postJson } from '../support/http-client.js';
import { ROOT } from '../support/paths.js';
import { useServers } from '../support/server-process.js';
import { tempDir } from '../support/temp-dir.js';

const run = promisify(execFile);
/** Each run does two `npm ci` and a build: about 30 s here, and CI machines may be several times slower. */
const RUN_TIMEOUT_MS = 240_000;

interface Outcome {
  code: number;
  output: string;
}

let dir: ReturnType<typeof tempDir>;
let source: string;
let root: string;
/** A `node` on PATH that is not /usr/bin/node, so the unit's ExecStart rewrite shows. */
let nodeOnPath: string;
let first: Outcome;

const path = (...parts: string[]) => join(root, ...parts);
const mode = (file: string) => statSync(file).mode & 0o777;

/** Copies the working tree's files (tracked and untracked, not ignored) into `to`. */
function copyCheckout(to: string): void {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  expect(listed.status, listed.stderr).toBe(0);
  for (const file of listed.stdout.split('\0')) {
    if (file === '' || !existsSync(join(ROOT, file))) continue; // deleted in the working tree
    if (/^(node_modules|dist|data|logs)\//.test(file)) continue;
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(to, file));
  }
}

async function install(extra: Record<string, string> = {}): Promise<Outcome> {
  // As from a root shell: no NODE_ENV (vitest sets "test"), none of the variables `npm test` or `npx` export about
  // this package and its script (npm_config_local_prefix would even send the inner npm to this checkout). The
  // machine's own npm settings (npm_config_registry, _cache, _cafile, proxies) stay, as a root shell would have them.
  const ownedByNpmRun = /^(npm_package_|npm_lifecycle_|npm_command$|npm_execpath$|npm_node_execpath$|npm_config_(local_prefix|call|user_agent|npm_version)$|INIT_CWD$|VITEST|NODE_ENV$)/i;
  const shell = Object.entries(process.env).filter(([key]) => !ownedByNpmRun.test(key));
  const env = {
    ...Object.fromEntries(shell),
    // and: no node_modules/.bin that `npx vitest` or `npm test` put on PATH.
    PATH: [dirname(nodeOnPath), ...(process.env.PATH ?? '').split(':').filter((entry) => !/node_modules\/\.bin$|node-gyp-bin$/.test(entry))].join(':'),
    ROOT: root,
    SERVICE_USER: 'root',
    SYSTEMCTL: 'true',
    ...extra,
  };
  try {
    const { stdout, stderr } = await run('bash', [join(source, 'deploy', 'install.sh')], {
      env,
      timeout: RUN_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}\n${e.message}` };
  }
}

beforeAll(async () => {
  dir = tempDir('sensor-ingest-install-');
  source = join(dir.path, 'src');
  root = join(dir.path, 'root');
  mkdirSync(source);
  mkdirSync(root);
  copyCheckout(source);
  nodeOnPath = join(dir.path, 'bin', 'node');
  mkdirSync(dirname(nodeOnPath));
  symlinkSync(process.execPath, nodeOnPath);
  first = await install();
}, RUN_TIMEOUT_MS + 10_000);

afterAll(() => {
  dir?.cleanup();
});
const servers = useServers();

describe('deploy/install.sh under a temp ROOT', () => {
  it('installs the built app with production dependencies only', () => {
    expect(first.code, first.output).toBe(0);
    // No package asks for a newer Node than this one (npm warns "EBADENGINE" and goes on).
    expect(first.output).not.toContain('EBADENGINE');
    expect(existsSync(path('opt/sensor-ingest/dist/main.js'))).toBe(true);
    for (const file of ['package.json', 'package-lock.json', 'README.md']) expect(existsSync(path('opt/sensor-ingest', file)), file).toBe(true);
    expect(existsSync(path('opt/sensor-ingest/src/ingest/dashboard/public/index.html'))).toBe(true);

    const pkg = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const modules = path('opt/sensor-ingest/node_modules');
    expect(existsSync(join(modules, 'express', 'package.json'))).toBe(true);
    expect(existsSync(join(modules, 'vitest'))).toBe(false);
    for (const name of Object.keys(pkg.dependencies)) expect(existsSync(join(modules, name, 'package.json')), name).toBe(true);
    for (const name of Object.keys(pkg.devDependencies)) expect(existsSync(join(modules, name)), name).toBe(false);
  });

  it('creates the data, log and settings directories and the settings file with tight modes', () => {
    expect(first.code, first.output).toBe(0);
    for (const d of ['var/lib/sensor-ingest', 'var/log/sensor-ingest']) {
      expect(statSync(path(d)).isDirectory(), d).toBe(true);
      expect(mode(path(d)).toString(8), d).toBe('750');
    }
    expect(mode(path('etc/sensor-ingest')).toString(8)).toBe('750');
    const envFile = path('etc/sensor-ingest/sensor-ingest.env');
    expect(mode(envFile).toString(8)).toBe('640');
    expect(readFileSync(envFile, 'utf8')).toBe(readFileSync(join(source, 'deploy', 'sensor-ingest.env'), 'utf8'));
    expect(first.output).toContain(`install: wrote ${envFile}`);
  });

  it('installs the unit (mode 0644) with the node on PATH and the service user, nothing else changed', () => {
    expect(first.code, first.output).toBe(0);
    const unitFile = path('etc/systemd/system/sensor-ingest.service');
    expect(mode(unitFile).toString(8)).toBe('644');
    expect(existsSync(`${unitFile}.new`)).toBe(false);
    const unit = readFileSync(unitFile, 'utf8');
    const lines = unit.split('\n');
    expect(lines).toContain(`ExecStart=${nodeOnPath} --max-semi-space-size=2 --max-old-space-size=128 --no-maglev /opt/sensor-ingest/dist/main.js`);
    expect(lines).toContain('User=root');
    expect(lines).toContain('Group=root');
    const original = readFileSync(join(source, 'deploy', 'sensor-ingest.service'), 'utf8');
    expect(unit).toBe(
      original
        .replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${nodeOnPath} `)
        .replace(/^User=.*$/m, 'User=root')
        .replace(/^Group=.*$/m, 'Group=root'),
    );
  });

  it('installed unit passes systemd-analyze verify', (context) => {
    expect(first.code, first.output).toBe(0);
    if (spawnSync('systemd-analyze', ['--version']).error) {
      context.skip('systemd-analyze is not installed (Debian package systemd)');
      return;
    }
    const result = spawnSync('systemd-analyze', ['verify', path('etc/systemd/system/sensor-ingest.service')], { encoding: 'utf8' });
    expect(result.stderr + result.stdout).toBe('');
    expect(result.status).toBe(0);
  });

  it('the installed app runs from its own production node_modules and stores a reading', async () => {
    expect(first.code, first.output).toBe(0);
    const dataDir = path('var/lib/sensor-ingest');
    const installed = await servers.start({ DATA_DIR: dataDir, LOG_DIR: path('var/log/sensor-ingest') }, path('opt/sensor-ingest/dist/main.js'), {
      cwd: path('opt/sensor-ingest'),
    });
    const answer = await postJson(`${installed.url}/data?ack=durable`, { id: 'installed' });
    expect(answer.status).toBe(201);
    // The dashboard's uncompiled files and uPlot came along.
    for (const asset of ['/', '/dashboard/dashboard.js', '/dashboard/uplot.js']) {
      expect((await fetch(`${installed.url}${asset}`)).status, asset).toBe(200);
    }
    installed.child.kill('SIGTERM');
    expect(await installed.exited).toEqual({ code: 0, signal: null });
    expect(readCsv(join(dataDir, 'data.csv')).map((record) => record.slice(1))).toEqual([['id'], ['installed']]);
  });

  it('a second run (an upgrade) from a shell with NODE_ENV=production exits 0, keeps the edited settings file and says so', async () => {
    expect(first.code, first.output).toBe(0);
    const envFile = path('etc/sensor-ingest/sensor-ingest.env');
    appendFileSync(envFile, 'INGEST_TOKEN=kept-by-the-second-run\n');
    const edited = readFileSync(envFile, 'utf8');
    // A file the first build left that the upgrade must replace, not merge into.
    writeFileSync(path('opt/sensor-ingest/dist/stale-from-before.js'), '');
    // Data and logs from before the upgrade must survive it.
    writeFileSync(path('var/lib/sensor-ingest/before-upgrade.csv'), 'received_at,id\n');
    writeFileSync(path('var/log/sensor-ingest/before-upgrade.log'), '{}\n');
    // NODE_ENV=production is common on a production box (or `sudo -E`, or omit=dev in root's npmrc).
    // `npm ci` then leaves out devDependencies, so the source build needs `--include=dev` to find tsc;
    // the build output is removed first so that only a real build can put it back.
    rmSync(join(source, 'dist'), { recursive: true, force: true });

    const second = await install({ NODE_ENV: 'production' });

    expect(second.code, second.output).toBe(0);
    expect(existsSync(join(source, 'dist', 'main.js'))).toBe(true);
    expect(readFileSync(envFile, 'utf8')).toBe(edited);
    expect(mode(envFile).toString(8)).toBe('640');
    expect(second.output).toContain(`install: keeping the existing ${envFile}`);
    expect(second.output).not.toContain('install: wrote');
    expect(existsSync(path('opt/sensor-ingest/dist/main.js'))).toBe(true);
    expect(existsSync(path('opt/sensor-ingest/dist/stale-from-before.js'))).toBe(false);
    expect(existsSync(path('opt/sensor-ingest/node_modules/express/package.json'))).toBe(true);
    expect(existsSync(path('opt/sensor-ingest/node_modules/vitest'))).toBe(false);
    expect(mode(path('etc/systemd/system/sensor-ingest.service')).toString(8)).toBe('644');
    for (const d of ['var/lib/sensor-ingest', 'var/log/sensor-ingest']) expect(mode(path(d)).toString(8), d).toBe('750');
    expect(readFileSync(path('var/lib/sensor-ingest/before-upgrade.csv'), 'utf8')).toBe('received_at,id\n');
    expect(existsSync(path('var/log/sensor-ingest/before-upgrade.log'))).toBe(true);
  }, RUN_TIMEOUT_MS + 10_000);
});
