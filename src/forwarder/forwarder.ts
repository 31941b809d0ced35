/**
 * The forwarder (SPEC section 10): every row made durable in DATA_DIR is
 * published to JetStream, from the CSV files themselves, the way a
 * tail-with-checkpoint reader does it:
 *
 *   take the forwarder lock ─► connect (for ever) ─► ensure the stream
 *     ─► loop: for each stream's files, oldest first:
 *          state (id, synced length) ─► rows from the cursor up to synced
 *          ─► publish them, all in flight at once, id <site>:<file id>:<offset>
 *          ─► retry the ones not acked (same ids) until they are
 *          ─► cursor := past them, fsynced
 *
 * Ingest never waits for any of it: rows wait in the files while NATS is
 * away, memory holds one chunk of rows, and a restart goes on from the
 * cursors. Two servers on one DATA_DIR: the one holding the lock forwards,
 * the other tries the lock every few seconds and takes over once it is
 * stale (its holder died).
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../shared/config.js';
import { RECEIVED_AT } from '../storage/csv.js';
import { streamFileOf } from '../storage/stream-files.js';
import { type FileState, STATE_DIR, csvNameOfState, readFileState, stateDirOf } from '../storage/file-state.js';
import { type NatsConfig, connectAndFollow, ensureStream, managerOf, subjectOf } from '../nats/connection.js';
import { safeMessage } from '../shared/redaction.js';
import { type CursorStore, createCursorStore } from './cursor-store.js';
import { type CsvRecord, readHeaderRecord, readRecords, readTail, scanRows, streamRecords } from '../storage/csv.js';
import { takeProcessLock } from '../storage/lock.js';
import type { ForwardMetrics } from './metrics.js';
import { createPause } from '../nats/pause.js';
import { type BatchPublisher, type OutgoingMessage, createBatchPublisher } from '../nats/batch-publish.js';
import { encodeRowMessage, messageId } from '../nats/row-message.js';

export type ForwarderConfig = NatsConfig & Pick<Config, 'dataDir' | 'streams' | 'siteId'>;

export interface ForwarderDeps {
  readonly config: ForwarderConfig;
  readonly logger: Logger;
  readonly metrics: ForwardMetrics;
  readonly now?: () => number;
  /** Tests may shorten the waits. */
  readonly timing?: Partial<typeof TIMING>;
}

export interface Forwarder {
  /** Rows were just written: look again now rather than at the next poll. */
  notify(): void;
  /** Rows durable but not acknowledged by JetStream, by stream. */
  lag(): ReadonlyMap<string, number>;
  /**
   * Whether every row of a closed file (an archive, a past day's file) is
   * acknowledged by JetStream, so it may be removed (SPEC section 12). False
   * for a file this forwarder has not read through yet, or while another
   * server on this DATA_DIR holds the forwarder lock.
   */
  readonly forwarded: (fileName: string) => boolean;
  readonly holdsLock: boolean;
  readonly connected: boolean;
  close(): Promise<void>;
}

const TIMING = {
  /** Another process's writes are seen within this. */
  pollMs: 1000,
  /** How often a server without the lock tries for it. */
  lockRetryMs: 2000,
  publishTimeoutMs: 5000,
  retryMaxMs: 5000,
  /** SPEC: WARN when the lag has not fallen for this long. */
  lagWarnMs: 60_000,
  lagCheckMs: 5000,
  /** Between passes that found rows: lets more gather, so chunks are bigger and passes fewer. */
  gatherMs: 50,
};

/** Rows published together (all in flight at once) before the cursor moves. */
const CHUNK_ROWS = 512;
/** Bytes counted for the lag metric per file per pass, so a huge backlog is counted over several passes. */
const COUNT_BYTES_PER_PASS = 4 * 1024 * 1024;

/** What the forwarder knows of one file. */
interface Tracked {
  readonly id: string;
  readonly name: string;
  readonly stream: string;
  readonly created: number;
  /** Acknowledged up to here (a row boundary). */
  cursor: number;
  /** Rows in [cursor, counted) are counted in `lag`. */
  counted: number;
  lag: number;
  /** Caught up and never to grow again (an archive): not looked at again. */
  settled: boolean;
  /** The header's columns but received_at (a file's first line never changes). */
  readonly columns: readonly string[];
}

/** A stream's CSV file as its name tells it. */
interface StreamCsv {
  readonly name: string;
  readonly stream: string;
  readonly archive: boolean;
  /** A `.gz` (SPEC section 12): read from its start, never grows. */
  readonly compressed: boolean;
  /** The UTC day of a daily file. */
  readonly day?: string;
}

export function startForwarder(deps: ForwarderDeps): Forwarder {
  const { config, metrics } = deps;
  const timing = { ...TIMING, ...deps.timing };
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: 'forwarder' });
  const streams = new Set(config.streams);
  const stateDir = stateDirOf(config.dataDir);
  const lockTarget = join(config.dataDir, STATE_DIR, 'forwarder');
  const byName = new Map<string, Tracked>();

  let closed = false;
  let holdsLock = false;
  let lockLost = false;
  let release: (() => Promise<void>) | undefined;
  let nc: NatsConnection | undefined;
  let connected = false;
  let cursors: CursorStore | undefined;
  const idle = createPause();
  const sleep = (ms: number): Promise<void> => idle.wait(ms);

  function lag(): Map<string, number> {
    const byStream = new Map<string, number>();
    for (const file of byName.values()) byStream.set(file.stream, (byStream.get(file.stream) ?? 0) + file.lag);
    return byStream;
  }
  metrics.setLagSource(lag);

  async function takeLock(): Promise<void> {
    nodeFs.mkdirSync(join(config.dataDir, STATE_DIR), { recursive: true });
    let told = false;
    while (!closed) {
      try {
        release = await takeProcessLock(lockTarget, {
          staleMs: 10_000,
          retries: 0,
          onLost: (error) => {
            lockLost = true;
            log.error({ err: safeMessage(error) }, 'forwarder lock lost; forwarding stops');
          },
        });
        holdsLock = true;
        log.info({ lock: `${lockTarget}.lock` }, 'forwarder lock taken');
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== 'ELOCKED') throw error;
        if (!told) log.info('another server on this DATA_DIR forwards; this one waits to take over');
        told = true;
        await sleep(timing.lockRetryMs);
      }
    }
  }


  /** The files to look at, by stream, oldest first. */
  function listFiles(): StreamCsv[] {
    let entries: string[];
    try {
      entries = nodeFs.readdirSync(stateDir);
    } catch {
      return [];
    }
    const files: StreamCsv[] = [];
    const present = new Set(entries.map(csvNameOfState));
    // A file removed by hand (an old archive, say) is no longer waited for, nor counted in the lag.
    for (const name of byName.keys()) if (!present.has(name)) byName.delete(name);
    for (const entry of entries) {
      const name = csvNameOfState(entry);
      if (name === null || byName.get(name)?.settled === true) continue;
      const of = streamFileOf(name, streams);
      if (of === null) continue;
      files.push({ name, ...of });
    }
    return files;
  }

  /**
   * The file's state, read twice around opening it: equal reads with no
   * archive under way mean the open file is the one the state describes.
   */
  function openStable(name: string): { fd: number; state: FileState } | null {
    const path = join(config.dataDir, name);
    const before = stateOrNull(path);
    if (before === null || before.archivedAs !== undefined) return null;
    let fd: number;
    try {
      // Non-blocking, and regular files only: this runs on the main thread, and opening a FIFO
      // put where a CSV file was would block it (and with it every request and SIGTERM) for ever.
      fd = nodeFs.openSync(path, nodeFs.constants.O_RDONLY | nodeFs.constants.O_NONBLOCK);
    } catch {
      return null;
    }
    if (!nodeFs.fstatSync(fd).isFile()) {
      nodeFs.closeSync(fd);
      return null;
    }
    const after = stateOrNull(path);
    if (after === null || after.archivedAs !== undefined || after.id !== before.id || after.synced < before.synced) {
      nodeFs.closeSync(fd);
      return null;
    }
    return { fd, state: after };
  }

  /**
   * Counts the file's new rows for the lag metric and, when JetStream is
   * there, publishes one chunk of them; resolves to the rows acknowledged.
   */
  async function forwardFile(js: BatchPublisher | undefined, csv: StreamCsv): Promise<number> {
    if (csv.compressed) return forwardCompressed(js, csv);
    const { name, stream, archive, day } = csv;
    const opened = openStable(name);
    if (opened === null) {
      if (!nodeFs.existsSync(join(config.dataDir, name))) byName.delete(name);
      return 0;
    }
    const { fd, state } = opened;
    try {
      const size = nodeFs.fstatSync(fd).size;
      const synced = Math.min(state.synced, size);
      let file = byName.get(name);
      if (file === undefined || file.id !== state.id) {
        const header = readHeaderRecord(nodeFs, fd, synced);
        if (header === null) return 0;
        const replaced = file !== undefined;
        const cursor = Math.max(cursors?.read(state.id) ?? 0, header.end);
        // A file that does not start with received_at (Flask10X's, say) holds no rows in our form.
        const foreign = header.fields[0] !== RECEIVED_AT;
        if (foreign) log.warn({ file: name }, 'file does not start with received_at; not forwarded');
        file = { id: state.id, name, stream, created: state.created, cursor, counted: cursor, lag: 0, settled: foreign, columns: header.fields.slice(1) };
        byName.set(name, file);
        if (foreign) return 0;
        // An archive rename just happened: the archive, listed on the next pass, goes first.
        if (replaced) return 0;
      }
      if (file.counted < synced) {
        const counted = scanRows(nodeFs, fd, file.counted, synced, COUNT_BYTES_PER_PASS);
        file.lag += counted.count;
        file.counted = counted.end;
      }
      if (file.cursor >= file.counted) {
        // Archives never grow again, nor do day files older than yesterday: not looked at again.
        if ((archive || isPastDay(day)) && file.cursor >= synced) file.settled = true;
        return 0;
      }
      if (js === undefined || !connected) return 0;
      const { records, end } = readRecords(nodeFs, fd, file.cursor, file.counted, CHUNK_ROWS);
      if (records.length === 0) return 0;
      return (await publishRecords(js, file, records, end)) ? records.length : 0;
    } finally {
      nodeFs.closeSync(fd);
    }
  }

  /** Publishes a file's records, then moves its cursor past them; false if closed first. */
  async function publishRecords(js: BatchPublisher, file: Tracked, records: readonly CsvRecord[], end: number): Promise<boolean> {
    const { columns, stream, name, id } = file;
    const subject = subjectOf(config.natsSubjectPrefix, config.siteId, stream);
    const outgoing: OutgoingMessage[] = records.map((record) => ({
      subject,
      id: messageId({ site: config.siteId, fileId: id, offset: record.offset }),
      payload: encodeRowMessage({ site: config.siteId, stream, file: name, received_at: record.fields[0] ?? '', cells: {} }, columns, record.fields.slice(1)),
    }));
    if (!(await publishAll(js, outgoing))) return false;
    file.cursor = end;
    file.lag -= records.length;
    cursors?.write(id, end);
    metrics.rowsForwarded(stream, records.length);
    return true;
  }

  /**
   * A `.gz` file (compressed while forwarding was off, or before its rows were
   * all sent): its rows are read from its start, so it is counted once and
   * then sent from the cursor to its end in one pass. Offsets are those of the
   * CSV bytes, as before compression, so message ids are unchanged.
   */
  async function forwardCompressed(js: BatchPublisher | undefined, { name, stream }: StreamCsv): Promise<number> {
    const path = join(config.dataDir, name);
    const state = stateOrNull(path);
    if (state === null) {
      if (!nodeFs.existsSync(path)) byName.delete(name);
      return 0;
    }
    let file = byName.get(name);
    if (file === undefined || file.id !== state.id) {
      // Its state is written just before its rename; a state left without its file (a compression cut short) is read by nothing.
      const tail = await readTail(path, 0).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
      if (tail === null) return 0;
      const cursor = Math.max(cursors?.read(state.id) ?? 0, tail.headerEnd);
      const foreign = tail.header[0] !== RECEIVED_AT;
      if (foreign) log.warn({ file: name }, 'file does not start with received_at; not forwarded');
      let lag = 0;
      if (!foreign && cursor < state.synced) for await (const _ of streamRecords(path, cursor, state.synced)) lag++;
      file = { id: state.id, name, stream, created: state.created, cursor, counted: state.synced, lag, settled: foreign, columns: tail.header.slice(1) };
      byName.set(name, file);
      if (foreign) return 0;
    }
    if (file.cursor >= state.synced) {
      file.settled = true;
      return 0;
    }
    if (js === undefined || !connected) return 0;
    let sent = 0;
    let records: CsvRecord[] = [];
    let end = file.cursor;
    for await (const record of streamRecords(path, file.cursor, state.synced)) {
      records.push(record);
      end = record.end;
      if (records.length < CHUNK_ROWS) continue;
      if (!(await publishRecords(js, file, records, end))) return sent;
      sent += records.length;
      records = [];
    }
    if (records.length > 0 && (await publishRecords(js, file, records, end))) sent += records.length;
    if (file.cursor >= state.synced) file.settled = true;
    return sent;
  }

  /** Every row in flight at once; the ones not acknowledged again, same ids, until all are. False if closed first. */
  async function publishAll(js: BatchPublisher, rows: readonly OutgoingMessage[]): Promise<boolean> {
    let pending = rows;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (closed || lockLost) return false;
      if (!connected) {
        // Disconnected: the client would only buffer them; wait for the reconnect instead.
        await sleep(timing.pollMs);
        attempt--;
        continue;
      }
      const problems = await js.publish(pending, timing.publishTimeoutMs);
      const failed = pending.filter((_, index) => problems[index] !== undefined);
      if (failed.length > 0) {
        metrics.publishFailed(failed.length);
        const reason = problems.find((problem) => problem !== undefined);
        if (attempt === 0 || attempt % 10 === 0) log.warn({ rows: failed.length, err: reason, attempt }, 'publish not acknowledged; retrying');
        await sleep(Math.min(timing.retryMaxMs, 100 * 2 ** Math.min(attempt, 6)));
      }
      pending = failed;
    }
    return true;
  }

  /** Runs from taking the lock: counts the lag even while NATS is away, publishes once it is there. */
  async function forwardLoop(): Promise<void> {
    while (!closed && !lockLost) {
      let sent = 0;
      // A stream's later file waits until every row of its earlier ones is acknowledged (it is still counted).
      const behind = new Set<string>();
      for (const csv of orderFiles(listFiles())) {
        const { name, stream } = csv;
        if (closed || lockLost) return;
        try {
          sent += await forwardFile(behind.has(stream) ? undefined : js, csv);
          if (!caughtUp(name)) behind.add(stream);
        } catch (error) {
          log.error({ file: name, err: safeMessage(error), code: (error as { code?: string }).code }, 'cannot read file to forward');
        }
      }
      // Idle: wait for the writer's next report (or the poll, for another process's writes).
      // Busy: a short pause lets rows gather, so each pass publishes a bigger chunk.
      if (sent === 0) await sleep(timing.pollMs);
      else if (sent < CHUNK_ROWS) await new Promise((resolve) => setTimeout(resolve, timing.gatherMs));
    }
  }

  function isPastDay(day: string | undefined): boolean {
    return day !== undefined && day < new Date(now() - 86_400_000).toISOString().slice(0, 10);
  }

  function caughtUp(name: string): boolean {
    const file = byName.get(name);
    if (file === undefined) return !nodeFs.existsSync(join(config.dataDir, name)); // not readable yet: wait for it
    return file.cursor >= file.counted && file.lag === 0;
  }

  function orderFiles(files: readonly StreamCsv[]): StreamCsv[] {
    // A stream's files oldest first (creation time from the state), so the central copy keeps the edge's order.
    const created = (name: string): number => byName.get(name)?.created ?? stateOrNull(join(config.dataDir, name))?.created ?? 0;
    return files
      .map((file) => ({ ...file, created: created(file.name) }))
      .sort((a, b) => a.stream.localeCompare(b.stream) || a.created - b.created || a.name.localeCompare(b.name));
  }

  const lagWatch = watchLag();

  function watchLag(): NodeJS.Timeout {
    let lastTotal = 0;
    let stuckSince: number | undefined;
    let lastWarn = Number.NEGATIVE_INFINITY;
    let warned = false;
    const timer = setInterval(() => {
      const total = [...lag().values()].reduce((sum, rows) => sum + rows, 0);
      const at = now();
      if (total === 0) {
        if (warned) log.info('forward caught up');
        warned = false;
        stuckSince = undefined;
      } else if (stuckSince === undefined || total < lastTotal) {
        stuckSince = at;
      } else if (at - stuckSince >= timing.lagWarnMs && at - lastWarn >= timing.lagWarnMs) {
        log.warn({ rows: total, connected, since_s: Math.round((at - stuckSince) / 1000) }, 'forward lagging');
        lastWarn = at;
        warned = true;
      }
      lastTotal = total;
    }, timing.lagCheckMs);
    timer.unref();
    return timer;
  }

  /** Set once connected and the stream is there. */
  let js: BatchPublisher | undefined;

  async function connectAndEnsureStream(): Promise<void> {
    try {
      log.info({ servers: config.natsUrl?.length, subject: `${config.natsSubjectPrefix}.${config.siteId}.<stream>`, stream: config.natsStream }, 'connecting to NATS');
      nc = await connectAndFollow(config, `sensor-ingest ${config.siteId}`, log, {
        stillWanted: () => !closed,
        onChange: (now) => {
          connected = now;
          metrics.connected(now);
          if (now) idle.wake();
          // Acknowledgements of what was in flight may never come: publish it again at once.
          else js?.abandon('disconnected from NATS');
        },
        dropMessage: 'disconnected from NATS; rows wait in the CSV files',
      });
      if (nc === undefined) return;
      const jsm = await managerOf(nc);
      for (let attempt = 0; !closed; attempt++) {
        try {
          const how = await ensureStream(jsm, config);
          if (how === 'created') log.info({ stream: config.natsStream, replicas: config.natsReplicas }, 'JetStream stream created');
          break;
        } catch (error) {
          if (attempt % 10 === 0) log.warn({ err: safeMessage(error), stream: config.natsStream }, 'cannot find or create the JetStream stream; retrying');
          await new Promise((resolve) => setTimeout(resolve, timing.retryMaxMs));
        }
      }
      if (closed) return;
      js = createBatchPublisher(nc);
      idle.wake();
    } catch (error) {
      if (!closed) log.error({ err: safeMessage(error) }, 'cannot connect to NATS; forwarding stopped');
    }
  }

  let connecting: Promise<void> = Promise.resolve();
  const running = (async () => {
    let connectStarted = false;
    while (!closed) {
      try {
        lockLost = false;
        await takeLock();
        if (closed) return;
        cursors = createCursorStore(config.dataDir, nodeFs, (error) => {
          log.warn({ err: safeMessage(error), code: (error as { code?: string }).code }, 'cannot write a forward cursor; trying again');
        });
        if (!connectStarted) connecting = connectAndEnsureStream();
        connectStarted = true;
        await forwardLoop();
        if (closed) return;
        // The lock was lost (another server took it over): its cursors are not ours to write any more.
        cursors.abandon();
        cursors = undefined;
        byName.clear();
        holdsLock = false;
      } catch (error) {
        if (closed) return;
        log.error({ err: safeMessage(error) }, 'forwarder stopped; starting again');
        await sleep(timing.lockRetryMs);
      }
    }
  })();

  return {
    notify: () => idle.wake(),
    lag,
    // Settled: caught up and never to grow again, or a file not in our form (nothing in it to forward).
    forwarded: (fileName) => byName.get(fileName)?.settled === true,
    get holdsLock() {
      return holdsLock && !lockLost;
    },
    get connected() {
      return connected;
    },
    async close() {
      closed = true;
      clearInterval(lagWatch);
      idle.wake();
      // Publishes in flight end with the connection; their rows go again next start, same ids.
      js?.close();
      await nc?.close().catch(() => {});
      await running;
      await cursors?.close().catch((error: unknown) => log.warn({ err: safeMessage(error) }, 'cannot write the forward cursors at shutdown'));
      // A first connect still under way (NATS down) never ends by itself: stop waiting for it.
      await Promise.race([connecting, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      metrics.connected(false);
      await release?.().catch(() => {});
    },
  };
}

/** A file's state, or null while it has none or cannot be read now (EMFILE): the file waits for the next pass. */
function stateOrNull(csvPath: string): FileState | null {
  try {
    return readFileState(nodeFs, csvPath);
  } catch {
    return null;
  }
}
