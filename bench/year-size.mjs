#!/usr/bin/env node
/**
 * How much a year of 1-Hz readings takes on disk, plain and compressed as
 * COMPRESS_CLOSED=gzip compresses it, and how long a card's space lasts.
 *
 *   npm run build && npm run bench:year-size
 *   npm run bench:year-size -- --budget-gb 20 --streams 4 --runs 5
 *   npm run bench:year-size -- --json
 *
 * For each sensor shape below, one UTC day (86,400 rows, one a second) is
 * written to `<stream>-YYYY-MM-DD.csv` in a temp dir by the server's own
 * encoder (dist/storage/csv.js: header, received_at, quoting, formula guard),
 * with cells as the server makes them from JSON numbers (String(number)),
 * then compressed by the server's own dist/storage/compress.js
 * (compressClosedFile, zlib level 6, under lockForCommit): the .gz is read
 * back and must give the day's bytes again. Compression is timed over
 * --runs runs (each on a fresh copy of the day file; the median is shown),
 * wall time including its fsyncs.
 *
 * Values are made up but behave like the real thing (slow daily cycles, a
 * slow random walk, sensor noise, received_at's milliseconds jittering
 * around the sender's phase), from a fixed seed: the same bytes every run.
 *
 *   (a) env      a weather sensor (BME280-like): temperature (2 decimals),
 *                humidity (1), pressure hPa (1), battery volts (3)
 *   (b) tasmota  a Tasmota plug's tele/SENSOR, flattened as the server
 *                flattens it (ENERGY.Power, …): the device's Time text, its
 *                energy counters, and a fridge cycling on and off
 *
 * Sizes are decimal: 1 MB = 10^6 bytes, 1 GB = 10^9 bytes (a "32 GB" card
 * holds about 32 * 10^9 bytes). A year is 365 days. "Fits" assumes the
 * compressed stream keeps its newest two days plain (a past day's file is
 * compressed once the day after it has ended too).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { parseOptions, seededRandom } from './lib.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist', 'storage');
const DAY_SECONDS = 86_400;
/** The day generated: any past UTC day would do. */
const DAY = Date.UTC(2026, 11, 2);
const ROWS_PER_WRITE = 3_600;
const MB = 1e6;
const GB = 1e9;

const USAGE = `usage: npm run bench:year-size -- [options]
  --budget-gb N   usable space for the stream files, in GB (default 28: a 32 GB card less the system)
  --streams N     the "many streams" rows: N such streams at once (default 10)
  --runs N        compressions timed per shape, median shown (default 3)
  --json          print one JSON object instead of the tables
  --help`;

const args = parseOptions(USAGE, {
  'budget-gb': { type: 'string', default: '28' },
  streams: { type: 'string', default: '10' },
  runs: { type: 'string', default: '3' },
  json: { type: 'boolean', default: false },
});
const budget = Number(args['budget-gb']) * GB;
const streams = Number(args.streams);
const runs = Number(args.runs);
if (!(budget > 0) || !Number.isInteger(streams) || streams < 1 || !Number.isInteger(runs) || runs < 1) {
  console.error(USAGE);
  process.exit(2);
}

for (const file of ['csv.js', 'compress.js', 'lock.js', 'file-names.js']) {
  if (!existsSync(join(DIST, file))) {
    console.error(`dist/storage/${file} is missing: run npm run build first`);
    process.exit(1);
  }
}
const distModule = (file) => import(pathToFileURL(join(DIST, file)).href);
const { RECEIVED_AT, encodeLine, encodeRows, headerColumns } = await distModule('csv.js');
const { compressClosedFile } = await distModule('compress.js');
const { lockForCommit } = await distModule('lock.js');
const { currentFileName } = await distModule('file-names.js');

// ---------------------------------------------------------------- the values

function gaussian(rand) {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A slow random walk pulled back to 0 (Ornstein-Uhlenbeck): steady-state spread `sigma`, memory `tau` seconds. */
function wander(rand, sigma, tau) {
  let value = 0;
  const step = sigma * Math.sqrt(2 / tau);
  return () => (value += -value / tau + step * gaussian(rand));
}

/** A JSON number's cell, as the server writes it (String of the parsed number). */
const fixed = (value, decimals) => String(Number(value.toFixed(decimals)));

/** Arrival times: the sender's 1-s clock with its own phase, drifting slowly, plus network and queue jitter. */
function arrivals(rand) {
  const phase = wander(rand, 40, 6 * 3600);
  return (second) => DAY + second * 1000 + Math.round(180 + phase() + Math.abs(gaussian(rand)) * 6);
}

/** (a) A battery weather sensor outdoors: a daily cycle, weather drifting, sensor noise. */
function envShape() {
  const rand = seededRandom(1);
  const at = arrivals(rand);
  const tWalk = wander(rand, 0.6, 1800);
  const hWalk = wander(rand, 2, 3600);
  const pWalk = wander(rand, 0.8, 4 * 3600);
  return {
    name: 'env',
    what: 'temperature, humidity, pressure, battery',
    columns: ['temperature', 'humidity', 'pressure', 'battery'],
    row(second) {
      const day = second / DAY_SECONDS;
      // Coldest about 03:00, warmest about 15:00.
      const temperature = 8 + 4 * Math.sin(2 * Math.PI * (day - 9 / 24)) + tWalk() + 0.02 * gaussian(rand);
      const humidity = Math.min(100, Math.max(0, 78 - 2.5 * (temperature - 8) + hWalk() + 0.15 * gaussian(rand)));
      const pressure = 1016 - 4 * day + pWalk() + 0.06 * gaussian(rand);
      const battery = 3.012 - 0.004 * day + 0.002 * (temperature - 8) + 0.0015 * gaussian(rand);
      return { receivedAt: at(second), cells: [fixed(temperature, 2), fixed(humidity, 1), fixed(pressure, 1), fixed(battery, 3)] };
    },
  };
}

/** (b) A Tasmota plug under a fridge: tele/SENSOR flattened (ENERGY.*), the compressor cycling. */
function tasmotaShape() {
  const rand = seededRandom(2);
  const at = arrivals(rand);
  const vWalk = wander(rand, 1.2, 1800);
  let total = 1234.567;
  let today = 0;
  let on = false;
  let switchAt = 0;
  let onSince = 0;
  const local = (second) => new Date(DAY + second * 1000 + 3600_000).toISOString().slice(0, 19); // the device's UTC+1 time
  return {
    name: 'tasmota',
    what: 'Time, ENERGY.Total … ENERGY.Current (11 columns)',
    columns: ['Time', 'ENERGY.TotalStartTime', 'ENERGY.Total', 'ENERGY.Yesterday', 'ENERGY.Today', 'ENERGY.Power', 'ENERGY.ApparentPower', 'ENERGY.ReactivePower', 'ENERGY.Factor', 'ENERGY.Voltage', 'ENERGY.Current'],
    row(second) {
      if (second >= switchAt) {
        on = !on;
        onSince = second;
        switchAt = second + Math.round(on ? 1080 + 420 * rand() : 2100 + 900 * rand());
      }
      const voltage = 231 + 2.5 * Math.sin(2 * Math.PI * (second / DAY_SECONDS - 0.3)) + vWalk() + 0.4 * gaussian(rand);
      let power;
      let apparent;
      if (on) {
        const running = second - onSince;
        power = running < 2 ? 260 + 20 * rand() : 76 + 12 * Math.exp(-running / 300) + 1.2 * gaussian(rand);
        apparent = power / (0.78 + 0.02 * gaussian(rand));
      } else {
        power = Math.max(0, 0.9 + 0.3 * gaussian(rand));
        apparent = 4.5 + 0.4 * gaussian(rand);
      }
      power = Math.round(power);
      apparent = Math.max(power, Math.round(apparent));
      const reactive = Math.round(Math.sqrt(apparent * apparent - power * power));
      const factor = apparent === 0 ? 0 : power / apparent;
      total += power / 3.6e6;
      today += power / 3.6e6;
      return {
        receivedAt: at(second),
        cells: [
          local(second),
          '2025-03-14T09:12:51',
          fixed(total, 3),
          '1.152',
          fixed(today, 3),
          String(power),
          String(apparent),
          String(reactive),
          fixed(factor, 2),
          String(Math.round(voltage)),
          fixed(apparent / voltage, 3),
        ],
      };
    },
  };
}

// ---------------------------------------------------------------- one day, written and compressed

/** Writes the day as the writer would: the header with the file's first rows, then the rows in order. */
function writeDay(dir, shape) {
  const path = join(dir, currentFileName(shape.name, DAY, 'daily'));
  for (let from = 0; from < DAY_SECONDS; from += ROWS_PER_WRITE) {
    const rows = [];
    for (let second = from; second < Math.min(DAY_SECONDS, from + ROWS_PER_WRITE); second++) {
      const { receivedAt, cells } = shape.row(second);
      rows.push({ receivedAt, columns: shape.columns, cells });
    }
    const header = [RECEIVED_AT, ...headerColumns(rows)];
    const text = (from === 0 ? encodeLine(header) : '') + encodeRows(header, rows);
    if (from === 0) writeFileSync(path, text);
    else appendFileSync(path, text);
  }
  return path;
}

async function measure(dir, shape) {
  const path = writeDay(dir, shape);
  const plain = readFileSync(path);
  const keep = join(dir, 'kept', `${shape.name}.csv`);
  mkdirSync(dirname(keep), { recursive: true });
  copyFileSync(path, keep);
  const lines = plain.toString('utf8').split('\n');
  const seconds = [];
  let stored = 0;
  for (let run = 0; run < runs; run++) {
    if (run > 0) {
      rmSync(path + '.gz');
      rmSync(join(dir, '.sensor-ingest'), { recursive: true, force: true });
      copyFileSync(keep, path);
    }
    const started = process.hrtime.bigint();
    const result = await compressClosedFile(path, { lock: lockForCommit });
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    if (result.outcome !== 'compressed') throw new Error(`${shape.name}: compressClosedFile answered ${JSON.stringify(result)}`);
    if (existsSync(path)) throw new Error(`${shape.name}: the plain file is still there after compression`);
    stored = statSync(path + '.gz').size;
    if (stored !== result.storedBytes || result.plainBytes !== plain.length) throw new Error(`${shape.name}: sizes disagree with compressClosedFile's answer`);
    if (!gunzipSync(readFileSync(path + '.gz')).equals(plain)) throw new Error(`${shape.name}: the .gz does not give the day's bytes back`);
  }
  seconds.sort((a, b) => a - b);
  const median = seconds[Math.floor(seconds.length / 2)];
  return {
    stream: shape.name,
    columns: shape.what,
    rows: lines.length - 2,
    example: lines[1],
    header: lines[0],
    dayPlain: plain.length,
    dayCompressed: stored,
    compressSeconds: median,
  };
}

// ---------------------------------------------------------------- what it means for a card

/** Days of `n` streams that `space` bytes hold: plain; compressed with the newest two days still plain. */
function fits(result, n, space) {
  const plainDays = space / (n * result.dayPlain);
  const left = space - 2 * n * result.dayPlain;
  const compressedDays = left <= 0 ? plainDays : 2 + left / (n * result.dayCompressed);
  return { plainDays, compressedDays };
}

const mb = (bytes) => (bytes / MB).toFixed(2);
const gb = (bytes) => (bytes / GB).toFixed(2);
const duration = (days) => (days < 2 * 365 ? `${Math.floor(days)} d` : `${Math.floor(days)} d (${(days / 365).toFixed(1)} y)`);

function table(head, rows) {
  const widths = head.map((cell, i) => Math.max(cell.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells) => cells.map((cell, i) => (i === 0 ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const dir = mkdtempSync(join(tmpdir(), 'year-size-'));
let results;
try {
  results = [];
  for (const shape of [envShape(), tasmotaShape()]) results.push(await measure(dir, shape));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (args.json) {
  console.log(
    JSON.stringify(
      {
        node: process.version,
        budgetBytes: budget,
        streams,
        results: results.map((r) => ({ ...r, yearPlain: 365 * r.dayPlain, yearCompressed: 365 * r.dayCompressed, one: fits(r, 1, budget), many: fits(r, streams, budget) })),
      },
      null,
      2,
    ),
  );
} else {
  console.log(`One UTC day of 1-Hz readings per stream (86,400 rows), written by dist's encoder, gzip by dist's compressClosedFile (level 6); Node ${process.version}.\n`);
  for (const r of results) console.log(`${r.stream} (${r.columns}):\n  ${r.header}\n  ${r.example}`);
  console.log('');
  console.log(
    table(
      ['stream', 'bytes/row', 'day plain MB', 'day .gz MB', 'ratio', 'year plain GB', 'year .gz GB', 'gzip MB/s'],
      results.map((r) => [
        r.stream,
        (r.dayPlain / r.rows).toFixed(1),
        mb(r.dayPlain),
        mb(r.dayCompressed),
        `${(r.dayPlain / r.dayCompressed).toFixed(1)}x`,
        gb(365 * r.dayPlain),
        gb(365 * r.dayCompressed),
        (r.dayPlain / MB / r.compressSeconds).toFixed(0),
      ]),
    ),
  );
  console.log(`\nHow long ${budget / GB} GB lasts (compressed: the newest two days still plain):\n`);
  console.log(
    table(
      ['streams', 'year plain GB', 'year .gz GB', 'fits plain', 'fits .gz'],
      results.flatMap((r) =>
        [1, streams].map((n) => {
          const f = fits(r, n, budget);
          return [`${n} x ${r.stream}`, gb(365 * n * r.dayPlain), gb(365 * n * r.dayCompressed), duration(f.plainDays), duration(f.compressedDays)];
        }),
      ),
    ),
  );
  console.log(`\ngzip MB/s: MB of CSV per second of compressClosedFile's wall time (read, deflate, write, fsyncs), median of ${runs}.`);
}
