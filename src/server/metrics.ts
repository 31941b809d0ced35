/**
 * Every metric SPEC section 6 names, in one prom-client registry that the
 * app and the writer both report into. Values that exist only at scrape time
 * (queue length, inactivity) are read in `collect()`; the JSON view is
 * computed from the same metric objects as the Prometheus text.
 */
import { Counter, Gauge, Histogram, type Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../shared/config.js';
import type { DiskSpace } from './disk-space.js';
import type { StreamActivity } from './stream-activity.js';
import type { WriterEvents } from '../writer/writer.js';

export type MetricsConfig = Pick<Config, 'streams' | 'writeQueueMaxSize' | 'queueWarnThreshold' | 'inactivityWarnSec'>;

export interface MetricsDeps {
  readonly registry: Registry;
  readonly config: MetricsConfig;
  readonly activity: StreamActivity;
  /** Rows queued or being written, read at scrape time. */
  readonly queueLength: () => number;
  /** DATA_DIR's free space and the stream files' size, read at scrape time (SPEC section 12). */
  readonly disk: Pick<DiskSpace, 'freeBytes' | 'filesBytes'>;
  /** Node's process metrics (off in tests that build many registries). */
  readonly defaultMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  /** `route` is the ingest path, a fixed path, or `unmatched`: never a raw URL. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  ingestAccepted(stream: string, rows: number): void;
  ingestRejected(stream: string, reason: string): void;
  /** A request replayed for a repeated Idempotency-Key: nothing stored. */
  ingestDuplicate(stream: string): void;
  /** Retention removed a file of `bytes` (SPEC section 12). */
  retentionRemoved(reason: 'age' | 'size', bytes: number): void;
  /** A closed file was compressed to `.gz` (SPEC section 12). */
  fileCompressed(): void;
  readonly writerEvents: WriterEvents;
  /** The Flask10X-style JSON view (`/metrics?format=json`). */
  jsonView(): Promise<Record<string, unknown>>;
}

/** prom-client defaults that are gauges with a `_total` suffix. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Answers take microseconds to milliseconds; durable acks wait for an fsync (5–50 ms on an SD card). */
const REQUEST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000];
const FSYNC_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(deps: MetricsDeps): Metrics {
  const { registry, config, activity } = deps;
  const registers = [registry];
  if (deps.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // Gauges named *_total break Prometheus naming rules (promtool check metrics
    // rejects them); the per-type gauges nodejs_active_handles etc. stay.
    for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
  }

  const httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from request to answer, by method and route pattern.',
    labelNames: ['method', 'route'] as const,
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const ingestRows = new Counter({
    name: 'ingest_rows_total',
    help: 'Rows in ingest requests answered 2xx, by stream.',
    labelNames: ['stream'] as const,
    registers,
  });
  const ingestRejected = new Counter({
    name: 'ingest_rejected_total',
    help: 'Ingest requests refused, by stream and reason.',
    labelNames: ['stream', 'reason'] as const,
    registers,
  });
  const ingestDuplicates = new Counter({
    name: 'ingest_duplicates_total',
    help: 'Requests answered from an earlier one with the same Idempotency-Key, storing nothing, by stream.',
    labelNames: ['stream'] as const,
    registers,
  });
  new Gauge({
    name: 'write_queue_length',
    help: 'Rows queued or being written.',
    registers,
    collect() {
      this.set(deps.queueLength());
    },
  });
  const queueMax = new Gauge({ name: 'write_queue_maxsize', help: 'Rows the write queue holds at most.', registers });
  queueMax.set(config.writeQueueMaxSize);
  const writeSuccess = new Counter({ name: 'write_success_total', help: 'Rows made durable (written and fsynced).', registers });
  const writeError = new Counter({ name: 'write_error_total', help: 'Failed write attempts (one per file per attempt).', registers });
  const batchRows = new Histogram({
    name: 'write_batch_rows',
    help: 'Rows per file written in one group commit.',
    buckets: BATCH_BUCKETS,
    registers,
  });
  const fsyncDuration = new Histogram({
    name: 'write_fsync_duration_seconds',
    help: 'Time one fsync of a CSV file took.',
    buckets: FSYNC_BUCKETS,
    registers,
  });
  new Gauge({
    name: 'last_received_timestamp_seconds',
    help: 'When each stream last accepted rows (Unix seconds); absent for a stream never seen.',
    labelNames: ['stream'] as const,
    registers,
    collect() {
      this.reset();
      for (const stream of activity.streams) {
        const at = activity.lastReceived(stream);
        if (at !== null) this.set({ stream }, at / 1000);
      }
    },
  });
  new Gauge({
    name: 'inactivity_seconds',
    help: 'Seconds since each stream last accepted rows; absent for a stream never seen.',
    labelNames: ['stream'] as const,
    registers,
    collect() {
      this.reset();
      for (const stream of activity.streams) {
        const idle = activity.idleSec(stream);
        if (idle !== null) this.set({ stream }, idle);
      }
    },
  });

  const { disk } = deps;
  new Gauge({
    name: 'data_dir_bytes',
    help: 'Bytes the stream files in DATA_DIR take, as stored.',
    registers,
    async collect() {
      this.set(await disk.filesBytes());
    },
  });
  new Gauge({
    name: 'data_dir_free_bytes',
    help: "Bytes free on DATA_DIR's file system.",
    registers,
    async collect() {
      // A DATA_DIR that cannot be read leaves the gauge as it was; /readyz says why.
      this.set(await disk.freeBytes().catch(() => Number.NaN));
    },
  });

  const retentionFiles = new Counter({
    name: 'retention_removed_files_total',
    help: 'Closed files removed by retention, by reason (age or size).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of ['age', 'size'] as const) retentionFiles.inc({ reason }, 0);
  const retentionBytes = new Counter({ name: 'retention_removed_bytes_total', help: 'Bytes of the files retention removed.', registers });
  const compressedFiles = new Counter({ name: 'compress_files_total', help: 'Closed files compressed to .gz (COMPRESS_CLOSED=gzip).', registers });

  // Label children built once: no label lookup per request on the ingest path.
  // Routes are patterns and statuses a short list, so this map stays small.
  const requestChildren = new Map<string, { count: Counter.Internal; duration: Histogram.Internal<"method" | "route"> }>();
  const rowsByStream = new Map(config.streams.map((stream) => [stream, ingestRows.labels(stream)]));
  for (const child of rowsByStream.values()) child.inc(0);

  const valueOf = async (metric: Counter): Promise<number> => (await metric.get()).values[0]?.value ?? 0;
  const perStream = <T>(value: (stream: string) => T): Record<string, T> =>
    Object.fromEntries(config.streams.map((stream) => [stream, value(stream)]));

  return {
    registry,
    observeRequest(method, route, status, seconds) {
      // One child per label set, found by one string key: no label hashing per request.
      const key = `${method} ${route} ${status}`;
      let children = requestChildren.get(key);
      if (children === undefined) {
        children = { count: httpRequests.labels(method, route, String(status)), duration: httpDuration.labels(method, route) };
        requestChildren.set(key, children);
      }
      children.count.inc();
      children.duration.observe(seconds);
    },
    ingestAccepted(stream, rows) {
      (rowsByStream.get(stream) ?? ingestRows.labels(stream)).inc(rows);
    },
    ingestRejected(stream, reason) {
      ingestRejected.inc({ stream, reason });
    },
    ingestDuplicate(stream) {
      ingestDuplicates.inc({ stream });
    },
    retentionRemoved(reason, bytes) {
      retentionFiles.inc({ reason });
      retentionBytes.inc(bytes);
    },
    fileCompressed() {
      compressedFiles.inc();
    },
    writerEvents: {
      fileWritten(outcome) {
        writeSuccess.inc(outcome.rows);
        batchRows.observe(outcome.rows);
        fsyncDuration.observe(outcome.fsyncSeconds);
      },
      writeFailed() {
        writeError.inc();
      },
    },
    async jsonView() {
      const rows = await ingestRows.get();
      return {
        queue_length: deps.queueLength(),
        queue_maxsize: config.writeQueueMaxSize,
        queue_warn_threshold: warnLevelRows(config),
        write_success_total: await valueOf(writeSuccess),
        write_error_total: await valueOf(writeError),
        ingest_rows_total: perStream((stream) => rows.values.find((v) => v.labels.stream === stream)?.value ?? 0),
        last_received: perStream((stream) => {
          const at = activity.lastReceived(stream);
          return at === null ? null : new Date(at).toISOString();
        }),
        inactivity_seconds: perStream((stream) => {
          const idle = activity.idleSec(stream);
          return idle === null ? null : Math.round(idle * 1000) / 1000;
        }),
        inactivity_warn_threshold_sec: config.inactivityWarnSec,
        data_dir_bytes: await disk.filesBytes(),
        data_dir_free_bytes: await disk.freeBytes().catch(() => null),
      };
    },
  };
}

/** The queue length, in rows, at which backlog WARNs start. */
export function warnLevelRows(config: Pick<Config, 'writeQueueMaxSize' | 'queueWarnThreshold'>): number {
  return Math.max(1, Math.ceil(config.writeQueueMaxSize * config.queueWarnThreshold));
}
