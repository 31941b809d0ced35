/**
 * A property test at the writer's file-system seam (SPEC sections 4, 5 and
 * 11): random request sequences meet random faults, then the faults clear
 * and the writer drains. Whatever happened, every accepted row is in its
 * file exactly once, no refused row is anywhere, each CSV file has one
 * header as its first line (within MAX_COLUMNS), every cell is under the
 * column it was sent with, each file holds its rows in acceptance order,
 * no two files share an id, and no file's id ever changes.
 *
 *   steps ─► enqueue (single readings, batches, new keys, wide requests, 3 streams, days)
 *        ─► fault   (EIO, ENOSPC, short writes, EMFILE, a failed state read,
 *                    fsync / ftruncate / rename EIO, on CSV or state paths)
 *        ─► death   (the writer thread dies at its n-th file-system call)
 *        ─► tick    (commits run between arrivals)
 *   then ─► drain (the faults still queued are met by its retries) ─► clear
 *        ─► drain ─► check every file
 *
 * A thread death is simulated inline: from the chosen call on, every call
 * fails (a dead thread does nothing more, not even close its files or cut
 * back a short write; a syscall itself is never torn, but a short write may
 * be its last), the batch's answer is thrown away and run() rejects, as
 * piscina's does. The write journal then tells the main thread where the
 * dead attempt wrote, and the writer forgets where files end, as a fresh
 * thread would. The lock is an in-memory one that only checks exclusion, so
 * that everything runs on virtual time: a seed replays exactly.
 *
 * PROPERTY_SEED and PROPERTY_RUNS choose the seed and the number of runs; a
 * failure prints the seed and fast-check's path, which PROPERTY_PATH replays
 * (PROPERTY_TRACE=1 prints every step, task and file-system call).
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { guardCell } from '../../src/storage/csv.js';
import type { Reading } from '../../src/storage/reading.js';
import { type FileState, STATE_DIR, parseFileState } from '../../src/storage/file-state.js';
import { type Rotation, currentFileName } from '../../src/storage/file-names.js';
import type { BatchRunner } from '../../src/writer/runners.js';
import { forgetRowEnd } from '../../src/writer/worker/file-memory.js';
import { type WriteDeps, writeBatch } from '../../src/writer/worker/commit.js';
import { type LockFile } from '../../src/storage/lock.js';
import { createJournal } from '../../src/writer/resume-journal.js';
import type { WriterFs } from '../../src/storage/fs.js';
import { type Writer, createWriter } from '../../src/writer/writer.js';
import { readCsv } from '../support/csv-files.js';
import { memoryLogger } from '../support/logs.js';
import { tempDir } from '../support/temp-dir.js';
import { testConfig } from '../support/writer.js';

const SEED = Number(process.env.PROPERTY_SEED ?? 20_261_123);
const RUNS = Number(process.env.PROPERTY_RUNS ?? 1000);
/** PROPERTY_PATH replays one case (with PROPERTY_SEED); PROPERTY_TRACE=1 prints every step, task and file-system call. */
const PATH = process.env.PROPERTY_PATH;
const TRACE = process.env.PROPERTY_TRACE === '1';

const STREAMS = ['data', 'data2', 'data3'] as const;
/** Columns a request may bring besides `id`: some quoted, one formula-guarded. */
const KEYS = ['t', 'h', 'p', 'co2', 'bme.t', 'bme.h', 'note', 'x,y', 'q"k', '=f', 'lux', 'v'] as const;
/** Cell texts that exercise quoting, the formula guard and multi-byte UTF-8. */
const FLAVOURS: ReadonlyArray<(id: string, key: string) => string> = [
  (id, key) => `${id}${key.length}`,
  (id) => `a,b ${id}`,
  (id) => `say "hi" ${id}`,
  (id) => `line one\nline two ${id}`,
  (id) => `=1+${id.length}`,
  (id) => `é€😀 ${id}`,
  () => '',
  (id) => `-${id.length}.5`,
];
const DAY_MS = 86_400_000;
const BASE_MS = Date.UTC(2026, 10, 23, 10, 15, 0);

type Op = 'write' | 'open' | 'read' | 'fsync' | 'ftruncate' | 'rename';
type Where = 'csv' | 'state';
type Effect = 'EIO' | 'ENOSPC' | 'EMFILE' | 'short' | 'short-EIO';

interface FaultStep {
  readonly t: 'fault';
  readonly op: Op;
  readonly effect: Effect;
  readonly where: Where;
  /** Matching calls let through before the first failure. */
  readonly skip: number;
  readonly times: number;
}
interface DeathStep {
  readonly t: 'death';
  /** File-system calls let through before the thread dies. */
  readonly after: number;
  /** `before`: dies instead of its next call; `after`: once it returns; `short`: a write gets part way, then death; `after-batch`: once the batch is done. */
  readonly how: 'before' | 'after' | 'short' | 'after-batch';
}
interface EnqueueStep {
  readonly t: 'enqueue';
  readonly stream: number;
  readonly day: number;
  readonly keys: readonly string[];
  readonly readings: ReadonlyArray<{ readonly mask: number; readonly flavour: number }>;
}
interface TickStep {
  readonly t: 'tick';
  readonly ms: number;
}
type Step = FaultStep | DeathStep | EnqueueStep | TickStep;

interface Setup {
  readonly maxColumns: number;
  readonly rotate: Rotation;
  readonly queueRows: number;
  readonly queueBytes: number;
  readonly retries: number;
}

// ---------------------------------------------------------------- the faulty file system

const OP_EFFECTS: Record<Op, readonly Effect[]> = {
  write: ['EIO', 'ENOSPC', 'short', 'short-EIO'],
  open: ['EMFILE'],
  read: ['EIO'],
  fsync: ['EIO'],
  ftruncate: ['EIO'],
  rename: ['EIO'],
};

class ThreadDeath extends Error {
  readonly code = 'EWORKERDEATH';
  constructor() {
    super('the writer thread is dead (injected)');
  }
}

const injected = (code: string): Error => Object.assign(new Error(`${code}: injected`), { code });
const isStatePath = (path: string): boolean => path.includes(`/${STATE_DIR}/`) || path.endsWith(`/${STATE_DIR}`);

/**
 * node:fs behind the seam, failing as the steps say: queued faults per
 * operation and path kind, and an armed thread death counting down calls.
 */
function createFaultyFs() {
  const faults: Array<{ op: Op; effect: Effect; where: Where; skip: number; times: number }> = [];
  const fdPaths = new Map<number, string>();
  /** Every path opened, so a death can make the writer forget them all. */
  const paths = new Set<string>();
  let death: { after: number; how: DeathStep['how'] } | undefined;
  let dead = false;
  let hits = 0;

  /** The fault to inject on this call, if one is due. */
  function due(op: Op, path: string | undefined): Effect | undefined {
    const where: Where = path !== undefined && isStatePath(path) ? 'state' : 'csv';
    const index = faults.findIndex((fault) => fault.op === op && fault.where === where);
    if (index < 0) return undefined;
    const fault = faults[index] as (typeof faults)[number];
    if (fault.skip > 0) {
      fault.skip--;
      return undefined;
    }
    if (--fault.times === 0) faults.splice(index, 1);
    hits++;
    if (TRACE) console.log(`  injected ${fault.effect} on ${op} ${path ?? ''}`);
    return fault.effect;
  }

  /** Runs one call, unless the thread is dead or dies at it. */
  function step<T>(perform: () => T, short?: () => T, what?: string): T {
    if (TRACE) console.log(`fs ${what ?? ''}${dead ? ' (dead)' : ''}`);
    if (dead) throw new ThreadDeath();
    if (death !== undefined && death.how !== 'after-batch' && death.after-- <= 0) {
      const { how } = death;
      death = undefined;
      dead = true;
      if (how === 'after') perform();
      else if (how === 'short' && short !== undefined) short();
      throw new ThreadDeath();
    }
    return perform();
  }

  const pathOf = (fd: number): string | undefined => fdPaths.get(fd);
  const short = (path: string | undefined): string => path?.replace(/^.*sensor-ingest-property-[^/]+\//, '') ?? '?';

  const fs: WriterFs = {
    ...nodeFs,
    openSync: ((path: string, flags: nodeFs.OpenMode = 'r', mode?: nodeFs.Mode) =>
      step(() => {
        if (due('open', path) !== undefined) throw injected('EMFILE');
        const fd = nodeFs.openSync(path, flags, mode);
        fdPaths.set(fd, path);
        paths.add(path);
        return fd;
      }, undefined, `open ${short(path)} ${String(flags)}`)) as WriterFs['openSync'],
    closeSync: ((fd: number) =>
      step(() => {
        nodeFs.closeSync(fd);
        fdPaths.delete(fd);
      }, undefined, `close ${short(pathOf(fd))}`)),
    writeSync: ((fd: number, buffer: Buffer, offset?: number, length?: number, position?: number | null) => {
      const from = offset ?? 0;
      const count = length ?? buffer.length - from;
      const part = Math.max(1, Math.floor(count / 2));
      return step(
        () => {
          const effect = due('write', pathOf(fd));
          if (effect === 'EIO' || effect === 'ENOSPC') throw injected(effect);
          if (effect === 'short') return nodeFs.writeSync(fd, buffer, from, part, position);
          if (effect === 'short-EIO') {
            nodeFs.writeSync(fd, buffer, from, part, position);
            throw injected('EIO');
          }
          return nodeFs.writeSync(fd, buffer, from, count, position);
        },
        () => nodeFs.writeSync(fd, buffer, from, part, position),
        `write ${short(pathOf(fd))} ${count}`,
      );
    }) as WriterFs['writeSync'],
    readSync: ((fd: number, buffer: NodeJS.ArrayBufferView, offset: number, length: number, position: nodeFs.ReadPosition | null) =>
      step(() => {
        if (due('read', pathOf(fd)) !== undefined) throw injected('EIO');
        return nodeFs.readSync(fd, buffer, offset, length, position);
      }, undefined, `read ${short(pathOf(fd))}`)) as WriterFs['readSync'],
    fsyncSync: ((fd: number) =>
      step(() => {
        if (due('fsync', pathOf(fd)) !== undefined) throw injected('EIO');
        nodeFs.fsyncSync(fd);
      }, undefined, `fsync ${short(pathOf(fd))}`)),
    ftruncateSync: ((fd: number, length?: number) =>
      step(() => {
        if (due('ftruncate', pathOf(fd)) !== undefined) throw injected('EIO');
        nodeFs.ftruncateSync(fd, length);
      }, undefined, `ftruncate ${short(pathOf(fd))} ${length}`)),
    renameSync: ((from: string, to: string) =>
      step(() => {
        if (due('rename', from) !== undefined) throw injected('EIO');
        nodeFs.renameSync(from, to);
      }, undefined, `rename ${short(from)} ${short(to)}`)) as WriterFs['renameSync'],
    fstatSync: ((fd: number, options?: nodeFs.StatSyncOptions) => step(() => nodeFs.fstatSync(fd, options), undefined, `fstat ${short(pathOf(fd))}`)) as WriterFs['fstatSync'],
    existsSync: ((path: string) => step(() => nodeFs.existsSync(path), undefined, `exists ${short(path)}`)) as WriterFs['existsSync'],
    readdirSync: ((path: string, options?: unknown) => step(() => nodeFs.readdirSync(path, options as undefined), undefined, `readdir ${short(path)}`)) as WriterFs['readdirSync'],
    unlinkSync: ((path: string) => step(() => nodeFs.unlinkSync(path), undefined, `unlink ${short(path)}`)) as WriterFs['unlinkSync'],
    mkdirSync: ((path: string, options?: nodeFs.MakeDirectoryOptions) => step(() => nodeFs.mkdirSync(path, options), undefined, `mkdir ${short(path)}`)) as WriterFs['mkdirSync'],
  };

  return {
    fs,
    paths,
    addFault: (fault: FaultStep) => faults.push({ ...fault }),
    armDeath: (step: DeathStep) => {
      death = { after: step.after, how: step.how };
    },
    /** Whether the thread died during the batch just run (an after-batch death dies now). */
    takeDeath(): boolean {
      if (death?.how === 'after-batch') {
        death = undefined;
        dead = true;
      }
      const died = dead;
      dead = false;
      return died;
    },
    clear() {
      faults.length = 0;
      death = undefined;
    },
    get hits() {
      return hits;
    },
    /** Closes what a dead thread left open. */
    closeAll() {
      for (const fd of fdPaths.keys()) {
        try {
          nodeFs.closeSync(fd);
        } catch {
          // already closed by the code under test
        }
      }
      fdPaths.clear();
    },
  };
}

type FaultyFs = ReturnType<typeof createFaultyFs>;

/**
 * The lock, in memory: one writer here, so it only checks that no two
 * batches ever hold a file at once. Resolving at once keeps every run on
 * virtual time, so a seed replays exactly.
 */
function memoryLock(): LockFile {
  const held = new Set<string>();
  return (path) => {
    if (held.has(path)) return Promise.reject(Object.assign(new Error(`${path} is locked by a batch still under way`), { code: 'ELOCKED' }));
    held.add(path);
    return Promise.resolve(() => {
      held.delete(path);
      return Promise.resolve();
    });
  };
}

/** An inline runner whose thread can die: run() rejects, the rows it wrote stay, the journal says where. */
function dyingRunner(faulty: FaultyFs, deaths: { count: number }, afterTask: () => void): BatchRunner {
  const journal = createJournal();
  const deps: WriteDeps = { fs: faulty.fs, lock: memoryLock(), now: Date.now, journal };
  return {
    async run(task) {
      if (TRACE) console.log(`task ${task.seq}: ${task.files.map((f) => `${f.fileName} ${f.rows.length} rows${f.resume ? ` resume ${JSON.stringify(f.resume)}` : ''}`).join(', ')}`);
      const result = await writeBatch(task, deps);
      afterTask();
      if (TRACE) console.log(`task ${task.seq} result ${JSON.stringify(result.files.map((f) => (f.ok ? { ok: true, rows: f.rows, archivedAs: f.archivedAs, stateError: f.stateError } : f)))}`);
      if (!faulty.takeDeath()) return result;
      deaths.count++;
      // A fresh thread knows nothing of where files end: it scans them again.
      for (const path of faulty.paths) forgetRowEnd(path);
      throw Object.assign(new Error('the writer thread died (injected)'), { code: 'EWORKER' });
    },
    journal,
    isAlive: () => true,
    close: async () => {},
  };
}

// ---------------------------------------------------------------- the steps

const enqueueArb: fc.Arbitrary<EnqueueStep> = fc.record({
  t: fc.constant('enqueue' as const),
  stream: fc.nat({ max: STREAMS.length - 1 }),
  day: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 2 }) }),
  keys: fc.oneof(
    { weight: 3, arbitrary: fc.subarray([...KEYS], { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.subarray([...KEYS]) }, // wide: past a small MAX_COLUMNS, a reset
  ),
  readings: fc.oneof(
    { weight: 4, arbitrary: fc.array(fc.record({ mask: fc.nat(), flavour: fc.nat({ max: FLAVOURS.length - 1 }) }), { minLength: 1, maxLength: 3 }) },
    { weight: 1, arbitrary: fc.array(fc.record({ mask: fc.nat(), flavour: fc.nat({ max: FLAVOURS.length - 1 }) }), { minLength: 10, maxLength: 40 }) },
  ),
});

const faultArb: fc.Arbitrary<FaultStep> = fc
  .constantFrom(...(Object.keys(OP_EFFECTS) as Op[]))
  .chain((op) =>
    fc.record({
      t: fc.constant('fault' as const),
      op: fc.constant(op),
      effect: fc.constantFrom(...OP_EFFECTS[op]),
      where: fc.oneof({ weight: 3, arbitrary: fc.constant<Where>('csv') }, { weight: 1, arbitrary: fc.constant<Where>('state') }),
      skip: fc.nat({ max: 3 }),
      times: fc.integer({ min: 1, max: 4 }),
    }),
  );

const deathArb: fc.Arbitrary<DeathStep> = fc.record({
  t: fc.constant('death' as const),
  after: fc.nat({ max: 40 }),
  how: fc.constantFrom('before', 'after', 'short', 'after-batch'),
});

const tickArb: fc.Arbitrary<TickStep> = fc.record({ t: fc.constant('tick' as const), ms: fc.constantFrom(0, 0, 1, 4) });

const stepsArb: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof({ weight: 6, arbitrary: enqueueArb }, { weight: 3, arbitrary: faultArb }, { weight: 1, arbitrary: deathArb }, { weight: 3, arbitrary: tickArb }),
  { minLength: 1, maxLength: 40 },
);

const setupArb: fc.Arbitrary<Setup> = fc.record({
  maxColumns: fc.constantFrom(3, 5, 1024),
  rotate: fc.constantFrom<Rotation>('none', 'daily'),
  queueRows: fc.integer({ min: 15, max: 200 }),
  queueBytes: fc.integer({ min: 4000, max: 60_000 }),
  retries: fc.nat({ max: 3 }),
});

// ---------------------------------------------------------------- one run

/** What was sent, by id: where the row must be and what it holds. */
interface Sent {
  readonly order: number;
  readonly fileName: string;
  readonly receivedAt: number;
  /** Guarded column → guarded cell, as they must read back. */
  readonly cells: ReadonlyMap<string, string>;
}

interface RunStats {
  runs: number;
  accepted: number;
  refused: number;
  faultsHit: number;
  deaths: number;
  archives: number;
}

/** One request's readings: `id` plus the reading's share of the request's keys (at most MAX_COLUMNS in all). */
function buildRequest(step: EnqueueStep, setup: Setup, nextId: () => string): Array<{ id: string; reading: Reading }> {
  const keys = step.keys.slice(0, setup.maxColumns - 1);
  return step.readings.map(({ mask, flavour }) => {
    const id = nextId();
    const columns = ['id'];
    const cells = [id];
    keys.forEach((key, i) => {
      if ((mask >> i) & 1) {
        columns.push(key);
        cells.push((FLAVOURS[(flavour + i) % FLAVOURS.length] as (id: string, key: string) => string)(id, key));
      }
    });
    return { id, reading: { columns, cells } };
  });
}

/** `data.csv` itself, or one of its archives (`data.20261123T101500Z.csv`, `…Z-1.csv`). */
function isFileOrArchive(found: string, current: string): boolean {
  if (found === current) return true;
  const base = current.slice(0, -'.csv'.length);
  return found.startsWith(`${base}.`) && /^\d{8}T\d{6}Z(-\d+)?\.csv$/.test(found.slice(base.length + 1));
}

/**
 * Checks the file states as they stand: a state marked with an archive name
 * is a move under way (the next write completes it, and the forwarder skips
 * a marked file), so its id is the archive's; every other state's id is its
 * file's alone, and stays with that file (its inode) for ever (SPEC section
 * 11, "File identity"). `idsByIno` carries what was seen across calls.
 */
function watchIdentity(dataDir: string, idsByIno: Map<number, string>): Array<{ csv: string; state: FileState; size: number; text: string }> {
  const stateDir = join(dataDir, STATE_DIR, 'files');
  const kept: Array<{ csv: string; state: FileState; size: number; text: string }> = [];
  const owners = new Map<string, string>();
  const marked: Array<{ csv: string; id: string; archivedAs: string }> = [];
  for (const name of nodeFs.existsSync(stateDir) ? nodeFs.readdirSync(stateDir).filter((n) => n.endsWith('.csv.state')) : []) {
    const csv = name.slice(0, -'.state'.length);
    const state = parseFileState(nodeFs.readFileSync(join(stateDir, name), 'utf8'));
    if (state === null) throw new Error(`the state of ${csv} does not parse`);
    if (state.archivedAs !== undefined) {
      marked.push({ csv, id: state.id, archivedAs: state.archivedAs });
      continue;
    }
    const other = owners.get(state.id);
    if (other !== undefined) throw new Error(`file id ${state.id} is both ${other}'s and ${csv}'s`);
    owners.set(state.id, csv);
    const path = join(dataDir, csv);
    if (!nodeFs.existsSync(path)) continue;
    const { ino, size } = nodeFs.statSync(path);
    const before = idsByIno.get(ino);
    if (before !== undefined && before !== state.id) throw new Error(`${csv} (inode ${ino}) had file id ${before}, now ${state.id}`);
    idsByIno.set(ino, state.id);
    kept.push({ csv, state, size, text: nodeFs.readFileSync(path, 'latin1') });
  }
  for (const { csv, id, archivedAs } of marked) {
    const owner = owners.get(id);
    if (owner !== undefined && owner !== archivedAs) throw new Error(`file id ${id} of ${csv} (moving to ${archivedAs}) is ${owner}'s`);
  }
  return kept;
}

/** writer.drain on virtual time: timers run until the queue is empty or the drain's deadline passes. */
async function drain(writer: Writer): Promise<number> {
  const left = writer.drain(20_000);
  await vi.runAllTimersAsync();
  return left;
}

async function runOnce(setup: Setup, steps: readonly Step[], stats: RunStats): Promise<void> {
  const dir = tempDir('sensor-ingest-property-');
  // Virtual time: ticks, backoffs and archive names follow the steps alone, so a seed replays the same run.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'Date'] });
  vi.setSystemTime(BASE_MS);
  const faulty = createFaultyFs();
  const deaths = { count: 0 };
  const idsByIno = new Map<number, string>();
  const violations: string[] = [];
  let writer: Writer | undefined;
  try {
    const { logger } = memoryLogger('fatal');
    writer = createWriter({
      config: testConfig(dir.path, {
        MAX_COLUMNS: String(setup.maxColumns),
        CSV_ROTATE: setup.rotate,
        WRITE_QUEUE_MAXSIZE: String(setup.queueRows),
        WRITE_QUEUE_MAX_BYTES: String(setup.queueBytes),
        WRITE_RETRIES: String(setup.retries),
        WRITE_BACKOFF_BASE_SEC: '0.001',
        WRITE_BACKOFF_MAX_SEC: '0.01',
      }),
      // Checked after every task too; a throw there would only look like a thread death to the writer.
      runner: dyingRunner(faulty, deaths, () => {
        try {
          watchIdentity(dir.path, idsByIno);
        } catch (error) {
          violations.push(String(error));
        }
      }),
      logger,
      random: () => 0.5,
    });
    const sent = new Map<string, Sent>();
    const refused = new Set<string>();
    const settled = new Set<string>();
    let ids = 0;
    let order = 0;
    for (const step of steps) {
      if (TRACE) console.log(`step ${JSON.stringify(step)}`);
      if (step.t === 'fault') faulty.addFault(step);
      else if (step.t === 'death') faulty.armDeath(step);
      else if (step.t === 'tick') await vi.advanceTimersByTimeAsync(step.ms);
      else {
        const stream = STREAMS[step.stream] as string;
        const receivedAt = BASE_MS + step.day * DAY_MS + order;
        const request = buildRequest(step, setup, () => `r${ids++}`);
        let stored: Promise<void>;
        try {
          stored = writer.enqueue(stream, request.map((r) => r.reading), receivedAt);
        } catch {
          // 503 (queue full) or 413 (never fits): not acknowledged, so never written.
          for (const { id } of request) refused.add(id);
          continue;
        }
        const fileName = currentFileName(stream, receivedAt, setup.rotate);
        for (const { id, reading } of request) {
          const cells = new Map(reading.columns.map((column, i) => [guardCell(column), guardCell(reading.cells[i] as string)]));
          sent.set(id, { order: order++, fileName, receivedAt, cells });
        }
        void stored.then(() => {
          for (const { id } of request) settled.add(id);
        });
      }
    }

    // The faults still queued are few (times ≤ 4 each): the retries of the drain meet them, then the disk is well.
    const leftWithFaults = await drain(writer);
    faulty.clear();
    const left = leftWithFaults === 0 ? 0 : await drain(writer);
    expect(left, 'rows still queued after the faults cleared').toBe(0);
    expect([...sent.keys()].filter((id) => !settled.has(id)), 'accepted rows whose ack never came').toEqual([]);

    // Every CSV file: one header, first, within MAX_COLUMNS; each row whole, under its own columns, in order.
    const found = new Map<string, string>();
    const csvFiles = nodeFs.readdirSync(dir.path).filter((name) => name.endsWith('.csv') && nodeFs.statSync(join(dir.path, name)).isFile());
    for (const name of csvFiles) {
      const text = nodeFs.readFileSync(join(dir.path, name), 'utf8');
      expect(text.startsWith('received_at,'), `${name} starts with its header`).toBe(true);
      const [header, ...rows] = readCsv(join(dir.path, name)) as [string[], ...string[][]];
      expect(header.length - 1, `${name}: header width`).toBeLessThanOrEqual(setup.maxColumns);
      expect(new Set(header).size, `${name}: header cells unique`).toBe(header.length);
      const idColumn = header.indexOf('id');
      expect(idColumn, `${name}: header has id`).toBeGreaterThan(0);
      let lastOrder = -1;
      for (const row of rows) {
        expect(row[0], `${name}: a second header`).not.toBe('received_at');
        const id = row[idColumn] as string;
        const expected = sent.get(id);
        if (expected === undefined) throw new Error(`${name}: row ${JSON.stringify(row)} was ${refused.has(id) ? 'refused' : 'never sent'}`);
        const earlier = found.get(id);
        if (earlier !== undefined) throw new Error(`row ${id} is in ${earlier} and again in ${name}`);
        found.set(id, name);
        expect(isFileOrArchive(name, expected.fileName), `row ${id} belongs in ${expected.fileName}, found in ${name}`).toBe(true);
        expect(row[0]).toBe(new Date(expected.receivedAt).toISOString());
        for (const column of expected.cells.keys()) expect(header, `${name}: row ${id}'s column ${column}`).toContain(column);
        header.forEach((column, i) => {
          if (i > 0) expect(row[i], `${name}: row ${id}, column ${column}`).toBe(expected.cells.get(column) ?? '');
        });
        expect(expected.order, `${name}: row ${id} out of acceptance order`).toBeGreaterThan(lastOrder);
        lastOrder = expected.order;
      }
    }
    const missing = [...sent.keys()].filter((id) => !found.has(id));
    expect(missing, 'accepted rows missing from every file').toEqual([]);

    // File identity: each file keeps its id, no two files share one, and no state vouches for more than its file holds.
    expect(violations, 'file identity between tasks').toEqual([]);
    const identity = watchIdentity(dir.path, idsByIno);
    for (const { csv, state, size, text } of identity) {
      expect(state.synced, `${csv}: synced length within the file`).toBeLessThanOrEqual(size);
      expect(state.synced === 0 || text[state.synced - 1] === '\n', `${csv}: synced length ${state.synced} at a row end`).toBe(true);
    }

    stats.runs++;
    stats.accepted += sent.size;
    stats.refused += refused.size;
    stats.faultsHit += faulty.hits;
    stats.deaths += deaths.count;
    stats.archives += csvFiles.filter((name) => /\.\d{8}T\d{6}Z(-\d+)?\.csv$/.test(name)).length;
  } finally {
    faulty.clear();
    try {
      await writer?.close();
    } finally {
      vi.useRealTimers();
      faulty.closeAll();
      dir.cleanup();
    }
  }
}

/**
 * Cases found by this test, run first whatever the seed. Both duplicate rows
 * today: a retry that found a dead attempt's rows in place and widened the
 * file left them in the archive, then failed after writing the new file
 * (a second thread death; a directory fsync that failed); the next retry
 * matched the new file from the batch's first row, found nothing, and wrote
 * every row again.
 */
const FOUND: Array<[Setup, Step[]]> = [
  [
    { maxColumns: 3, rotate: 'none', queueRows: 15, queueBytes: 4000, retries: 0 },
    [
      { t: 'enqueue', stream: 1, day: 0, keys: [], readings: [{ mask: 0, flavour: 0 }] },
      { t: 'enqueue', stream: 1, day: 0, keys: ['t'], readings: [{ mask: 204_872_437, flavour: 0 }] },
      { t: 'death', after: 0, how: 'after-batch' },
      { t: 'tick', ms: 0 },
      { t: 'death', after: 13, how: 'before' },
      { t: 'tick', ms: 0 },
    ],
  ],
  [
    { maxColumns: 3, rotate: 'none', queueRows: 15, queueBytes: 4000, retries: 0 },
    [
      { t: 'enqueue', stream: 0, day: 0, keys: ['lux'], readings: [{ mask: 133_059_843, flavour: 0 }, { mask: 0, flavour: 0 }] },
      { t: 'enqueue', stream: 0, day: 0, keys: ['x,y'], readings: [{ mask: 104_965_467, flavour: 0 }] },
      { t: 'tick', ms: 0 },
      { t: 'enqueue', stream: 0, day: 0, keys: ['bme.h'], readings: [{ mask: 859_549_101, flavour: 0 }, { mask: 0, flavour: 0 }] },
      { t: 'fault', op: 'fsync', effect: 'EIO', where: 'csv', skip: 3, times: 1 },
      { t: 'enqueue', stream: 0, day: 0, keys: ['lux'], readings: [{ mask: 10_359_555, flavour: 0 }] },
      { t: 'fault', op: 'open', effect: 'EMFILE', where: 'csv', skip: 2, times: 1 },
      { t: 'fault', op: 'fsync', effect: 'EIO', where: 'csv', skip: 2, times: 1 },
      { t: 'tick', ms: 0 },
    ],
  ],
];

describe('the writer under random faults (property)', () => {
  it(`every accepted row lands once, under its own columns, whatever the disk and the thread do (seed ${SEED}, ${RUNS} runs)`, { timeout: 600_000 }, async () => {
    const stats: RunStats = { runs: 0, accepted: 0, refused: 0, faultsHit: 0, deaths: 0, archives: 0 };
    console.log(`property: seed ${SEED}, ${RUNS} runs (PROPERTY_SEED, PROPERTY_RUNS to change)`);
    const started = Date.now();
    try {
      await fc.assert(
        fc.asyncProperty(setupArb, stepsArb, (setup, steps) => runOnce(setup, steps, stats)),
        { seed: SEED, numRuns: RUNS, examples: PATH === undefined ? FOUND : [], ...(PATH === undefined ? {} : { path: PATH, endOnFailure: true }) },
      );
    } catch (error) {
      console.error(`property failed: rerun with PROPERTY_SEED=${SEED} (fast-check's seed and path are in the error)`);
      throw error;
    }
    console.log(
      `property: ${stats.runs} runs in ${((Date.now() - started) / 1000).toFixed(1)} s; rows accepted ${stats.accepted}, refused ${stats.refused}; ` +
        `faults injected ${stats.faultsHit}, thread deaths ${stats.deaths}, archives ${stats.archives}`,
    );
    expect(stats.faultsHit).toBeGreaterThan(0);
    expect(stats.deaths).toBeGreaterThan(0);
  });
});
