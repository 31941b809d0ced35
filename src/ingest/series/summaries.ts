/**
 * Each stream file's per-minute summary (SPEC section 13), built once and kept
 * in `DATA_DIR/.sensor-ingest/summaries/<file name>.json`, and in memory for
 * the files asked about lately:
 *
 * - a closed file's summary is used only while the file's id, size and
 *   modification time are the ones it was made from; otherwise (missing,
 *   stale, unreadable) it is made again;
 * - the current file's summary goes on from the offset it had reached, as
 *   long as the file keeps its id and has not shrunk.
 *
 * Files are read a chunk at a time (asynchronously, decompressed for a
 * `.gz`), and each chunk is parsed before the next read: the event loop is
 * never held for more than one chunk, however large the file. A summary file
 * is a cache: written without fsync, and one that does not parse is rebuilt.
 */
import { mkdir, open, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readTail, wholeRowPieces } from '../../storage/csv.js';
import { STATE_DIR, readFileStateAsync } from '../../storage/file-state.js';
import { type ColumnMinutes, MinuteSummariser, type SummaryColumns } from './minute-summary.js';

/** Whether the file's byte before `offset` is a `\n` (0: the start, always a boundary). */
async function endsRowAt(path: string, offset: number): Promise<boolean> {
  if (offset === 0) return true;
  const byte = Buffer.alloc(1);
  const handle = await open(path, 'r');
  try {
    const { bytesRead } = await handle.read(byte, 0, 1, offset - 1);
    return bytesRead === 1 && byte[0] === 0x0a;
  } finally {
    await handle.close();
  }
}

function sizeOf(summary: FileSummary): number {
  let minutes = 0;
  for (const column of Object.values(summary.columns)) minutes += column.minutes.length;
  return minutes;
}

/** A kept summary as this code writes them: anything else (hand-edited, torn, from another version) is made again. */
function isSummary(value: unknown): value is FileSummary {
  const summary = value as Partial<FileSummary> | null;
  if (typeof summary !== 'object' || summary === null || summary.version !== 1 || typeof summary.id !== 'string') return false;
  if (![summary.size, summary.mtimeMs, summary.end].every((n) => typeof n === 'number' && Number.isFinite(n))) return false;
  if (typeof summary.columns !== 'object' || summary.columns === null || Array.isArray(summary.columns)) return false;
  for (const column of Object.values(summary.columns as Record<string, unknown>)) {
    const c = column as Partial<ColumnMinutes> | null;
    if (typeof c !== 'object' || c === null || typeof c.unit !== 'string') return false;
    const arrays = [c.minutes, c.min, c.max, c.sum, c.count];
    if (!arrays.every((array) => Array.isArray(array) && array.length === c.minutes?.length && array.every((n) => typeof n === 'number'))) return false;
    const minutes = c.minutes as number[];
    for (let i = 1; i < minutes.length; i++) if ((minutes[i] as number) <= (minutes[i - 1] as number)) return false;
  }
  return true;
}

/** What a summary was made from, and what it holds. */
export interface FileSummary {
  readonly version: 1;
  /** The file's id (its state), or `-` for a file without one. */
  readonly id: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** CSV bytes summarised: just past the last whole row read (for a `.gz`, of its CSV). */
  readonly end: number;
  readonly columns: SummaryColumns;
}

export interface Summaries {
  /** The summary of the stream file at `path`, made or brought up to date as needed; null if the file has gone. */
  of(path: string, closed: boolean): Promise<FileSummary | null>;
  /** Removes the summaries of files gone since (retention, compression); at most once a minute. */
  pruneGone(): Promise<void>;
  /** CSV bytes summarised since start-up (the benchmark's rate). */
  readonly bytesSummarised: number;
}

/** Summaries kept in memory, by count and by column-minutes (about 40 bytes each: a day of 4 fields is 5,760). */
const MEMORY_ENTRIES = 256;
const MEMORY_COLUMN_MINUTES = 1_000_000;
const CHUNK_BYTES = 256 * 1024;
/** The current file's summary is written back at most this often (it is kept in memory and read on meanwhile). */
const CURRENT_SAVE_MS = 600_000;

export function summaryDirOf(dataDir: string): string {
  return join(dataDir, STATE_DIR, 'summaries');
}

export function createSummaries(dataDir: string): Summaries {
  const dir = summaryDirOf(dataDir);
  const memory = new Map<string, FileSummary>();
  /** The current files' summarisers, which go on in place: no copy and no new index at each query. */
  const summarisers = new Map<string, { readonly summary: FileSummary; readonly summariser: MinuteSummariser }>();
  const building = new Map<string, Promise<FileSummary | null>>();
  const savedAt = new Map<string, number>();
  let bytesSummarised = 0;
  let prunedAt = Number.NEGATIVE_INFINITY;

  function remember(path: string, summary: FileSummary): void {
    memory.delete(path);
    memory.set(path, summary);
    let columnMinutes = 0;
    for (const kept of memory.values()) columnMinutes += sizeOf(kept);
    // The oldest go first, never the one just asked for.
    while (memory.size > 1 && (memory.size > MEMORY_ENTRIES || columnMinutes > MEMORY_COLUMN_MINUTES)) {
      const [oldest, summaryOf] = memory.entries().next().value as [string, FileSummary];
      memory.delete(oldest);
      summarisers.delete(oldest);
      columnMinutes -= sizeOf(summaryOf);
    }
  }

  async function load(path: string): Promise<FileSummary | null> {
    const kept = memory.get(path);
    if (kept !== undefined) return kept;
    try {
      const parsed = JSON.parse(await readFile(join(dir, `${basename(path)}.json`), 'utf8')) as unknown;
      return isSummary(parsed) ? parsed : null;
    } catch {
      return null; // none yet, or unreadable: made again
    }
  }

  async function save(path: string, summary: FileSummary): Promise<void> {
    await mkdir(dir, { recursive: true });
    const target = join(dir, `${basename(path)}.json`);
    const temporary = `${target}.tmp`;
    await writeFile(temporary, JSON.stringify(summary));
    await rename(temporary, target);
    savedAt.set(path, Date.now());
  }

  async function update(path: string, closed: boolean): Promise<FileSummary | null> {
    const info = await stat(path).catch(() => null);
    if (info === null) return null;
    const id = (await readFileStateAsync(path).catch(() => null))?.id ?? '-';
    const earlier = await load(path);
    const same = earlier !== null && earlier.id === id;
    if (same && earlier.size === info.size && earlier.mtimeMs === info.mtimeMs) {
      remember(path, earlier);
      return earlier;
    }
    // The current file goes on from where its summary ended (if it still ends a row there: a file emptied and
    // written again is read anew); a closed file that changed is summarised again.
    const goOn = same && !closed && info.size >= earlier.end && (await endsRowAt(path, earlier.end));
    const kept = summarisers.get(path);
    const summariser = goOn ? (kept?.summary === earlier ? kept.summariser : new MinuteSummariser(earlier.columns)) : new MinuteSummariser();
    const end = await summarise(path, goOn ? earlier.end : 0, summariser);
    if (end === null) return null;
    const summary: FileSummary = { version: 1, id, size: info.size, mtimeMs: info.mtimeMs, end, columns: summariser.result() };
    remember(path, summary);
    if (closed) summarisers.delete(path);
    else summarisers.set(path, { summary, summariser });
    if (closed || Date.now() - (savedAt.get(path) ?? 0) >= CURRENT_SAVE_MS) await save(path, summary).catch(() => {});
    return summary;
  }

  /** Feeds the whole rows from `from` (0: the header's end) to the summariser; resolves to where they end. */
  async function summarise(path: string, from: number, summariser: MinuteSummariser): Promise<number | null> {
    const head = await readTail(path, 0).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (head === null) return from;
    summariser.setHeader(head.header);
    let end = Math.max(from, head.headerEnd);
    for await (const { bytes, offset } of wholeRowPieces(path, end, Number.POSITIVE_INFINITY, CHUNK_BYTES)) {
      bytesSummarised += bytes.length;
      summariser.addRows(bytes, 0, bytes.length);
      end = offset + bytes.length;
    }
    return end;
  }

  return {
    of(path, closed) {
      let running = building.get(path);
      if (running === undefined) {
        running = update(path, closed).finally(() => building.delete(path));
        building.set(path, running);
      }
      return running;
    },
    async pruneGone() {
      if (Date.now() - prunedAt < 60_000) return;
      prunedAt = Date.now();
      const present = new Set(await readdir(dataDir).catch((): string[] => []));
      for (const name of await readdir(dir).catch((): string[] => [])) {
        const file = name.slice(0, -'.json'.length);
        if (name.endsWith('.json') && !present.has(file)) {
          await unlink(join(dir, name)).catch(() => {});
          memory.delete(join(dataDir, file));
          summarisers.delete(join(dataDir, file));
        }
      }
    },
    get bytesSummarised() {
      return bytesSummarised;
    },
  };
}

