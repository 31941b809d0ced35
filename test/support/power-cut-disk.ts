/**
 * A disk whose power can be cut (SPEC section 11): an ext4 file system in an
 * image file on a loop device, and copies of that image as the device holds
 * it at a given moment.
 *
 *   image file ◄── loop device ◄── ext4 (commit=600) ◄── the server's writes
 *        │                              │
 *        │ cp right after SIGKILL       └ its dirty pages: never in the copy
 *        ▼
 *   copy = the disk at the cut ─► e2fsck -fy ─► mount ─► server ─► check
 *
 * What the loop device has written is in the image file (in its page cache, or
 * on the disk under it), so `cp` of the image reads the device's content;
 * what ext4 holds in its own page cache and has not written is not there, as
 * a power cut would lose it. For that to be true of everything not fsynced,
 * the kernel must not write dirty pages out on its own while the test runs:
 * periodic writeback is turned off (vm.dirty_writeback_centisecs=0, and
 * vm.dirty_expire_centisecs high) and the journal commits only when asked
 * (commit=600). Both sysctls are global; they are restored in every case.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const TOOLS = ['mkfs.ext4', 'e2fsck', 'mount', 'umount', 'losetup', 'cp', 'sync'];
const VM = '/proc/sys/vm';
/** The sysctls held while the power can be cut, and the values they get. */
const HELD: Record<string, string> = { dirty_writeback_centisecs: '0', dirty_expire_centisecs: '360000' };

/** Runs a command to its end; throws with its output unless it exits with one of `ok`. */
export function run(command: string, args: readonly string[], ok: readonly number[] = [0]): { status: number; output: string } {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error !== undefined) throw new Error(`${command} ${args.join(' ')}: ${result.error.message}`);
  const status = result.status ?? -1;
  if (!ok.includes(status)) throw new Error(`${command} ${args.join(' ')} exited with ${status}${result.signal === null ? '' : ` (${result.signal})`}:\n${output}`);
  return { status, output };
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/**
 * Why power cuts cannot be tested here, or null when they can: it takes root
 * (mount, losetup, sysctls) and a working loop mount of an ext4 image.
 */
export function powerCutUnsupported(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts and vm sysctls); CI runs as root';
  const missing = TOOLS.filter((tool) => !hasCommand(tool));
  if (missing.length > 0) return `missing commands: ${missing.join(', ')} (Debian packages e2fsprogs, mount, util-linux)`;
  try {
    // Written back unchanged: /proc/sys may be read-only (an unprivileged container).
    for (const name of Object.keys(HELD)) writeFileSync(join(VM, name), readFileSync(join(VM, name), 'utf8'));
  } catch (error) {
    return `cannot set vm sysctls: ${(error as Error).message}`;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sensor-ingest-loop-probe-'));
  try {
    const disk = createDisk(dir, 'probe', 16);
    unmount(disk.mountPoint, disk.image);
    return null;
  } catch (error) {
    return `cannot loop-mount an ext4 image here: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Turns the kernel's periodic writeback off; returns the function that puts
 * the old values back (safe to call more than once; also run at process exit,
 * should the test's own clean-up never come).
 */
export function holdWriteback(): () => void {
  const saved = Object.keys(HELD).map((name) => [name, readFileSync(join(VM, name), 'utf8').trim()] as const);
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    process.off('exit', restore);
    const failures: string[] = [];
    for (const [name, value] of saved) {
      try {
        writeFileSync(join(VM, name), value);
      } catch (error) {
        failures.push(`vm.${name}=${value}: ${(error as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(`could not restore ${failures.join('; ')}`);
  };
  process.on('exit', restore);
  try {
    for (const [name, value] of Object.entries(HELD)) writeFileSync(join(VM, name), value);
  } catch (error) {
    restore();
    throw error;
  }
  return restore;
}

export interface Disk {
  readonly image: string;
  readonly mountPoint: string;
  /** The loop device, e.g. /dev/loop3. */
  readonly device: string;
}

/** Makes a `sizeMb` ext4 image `<dir>/<name>.img` and mounts it at `<dir>/<name>` with the journal committing only on demand. */
export function createDisk(dir: string, name: string, sizeMb: number): Disk {
  const image = join(dir, `${name}.img`);
  const fd = openSync(image, 'w');
  try {
    ftruncateSync(fd, sizeMb * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  run('mkfs.ext4', ['-q', '-F', image]);
  return mountImage(image, join(dir, name), ['commit=600']);
}

/** Mounts an image on a new loop device (released again when unmounted). */
export function mountImage(image: string, mountPoint: string, options: readonly string[] = []): Disk {
  mkdirSync(mountPoint, { recursive: true });
  run('mount', ['-t', 'ext4', '-o', ['loop', ...options].join(','), image, mountPoint]);
  const device = loopDevicesOf(image)[0];
  if (device === undefined) {
    unmount(mountPoint, image);
    throw new Error(`mounted ${image} but found no loop device for it`);
  }
  return { image, mountPoint, device };
}

function loopDevicesOf(image: string): string[] {
  const { output } = run('losetup', ['-j', image], [0, 1]);
  return output
    .split('\n')
    .map((line) => line.split(':')[0] ?? '')
    .filter((device) => device.startsWith('/dev/loop'));
}

/**
 * Unmounts (lazily if it is still busy) and detaches any loop device left on
 * the image. Never throws: it runs in clean-up, after whatever failed.
 */
export function unmount(mountPoint: string, image: string): void {
  if (spawnSync('umount', [mountPoint]).status !== 0) spawnSync('umount', ['-l', mountPoint]);
  for (const device of (() => {
    try {
      return loopDevicesOf(image);
    } catch {
      return [];
    }
  })()) {
    spawnSync('losetup', ['-d', device]);
  }
}

/** The device's completed writes and those in flight, from /sys/block/<loop>/stat. */
function deviceWrites(device: string): { done: string; inFlight: number } {
  const fields = readFileSync(`/sys/block/${basename(device)}/stat`, 'utf8').trim().split(/\s+/);
  // Fields: reads, merged, sectors, ticks; writes, merged, sectors, ticks; in flight; ...; flushes.
  return { done: [fields[4], fields[6], fields[15]].join('/'), inFlight: Number(fields[8]) };
}

/**
 * Copies the image as the device holds it now: the disk at the cut. A copy
 * during which the device wrote anything could mix two moments, so it is made
 * again until the device was idle from start to end (each copy is still a
 * moment after the cut). Returns how many copies it took.
 */
export function copyImage(disk: Disk, to: string): number {
  for (let attempt = 1; attempt <= 50; attempt++) {
    const before = deviceWrites(disk.device);
    run('cp', ['--sparse=always', disk.image, to]);
    const after = deviceWrites(disk.device);
    if (before.inFlight === 0 && after.inFlight === 0 && before.done === after.done) return attempt;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error(`${disk.device} never stayed idle for the length of a copy of ${disk.image}`);
}

/** `e2fsck -fy`: exit 0 (clean), 1 (corrected) and 2 (corrected, reboot) are a usable file system; more fails. */
export function checkFileSystem(image: string): { status: number; output: string } {
  const result = spawnSync('e2fsck', ['-fy', image], { encoding: 'utf8' });
  return { status: result.status ?? -1, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}
