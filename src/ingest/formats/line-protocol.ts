/**
 * InfluxDB line protocol (https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/),
 * as Telegraf, ESP32/Arduino InfluxDB clients and Home Assistant send it:
 *
 *   measurement[,tag=value…] field=value[,field=value…] [timestamp]
 *
 * Each line becomes one reading with columns `measurement`, its tags, its
 * fields and `time` (SPEC sections 8 and 9). All lines or none; an error
 * names the first bad line. Comment (`#`) and blank lines are skipped.
 */
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.js';
import { type Reading, ReadingBuilder } from '../../storage/reading.js';

export type Precision = 'ns' | 'us' | 'ms' | 's';

/** The `precision` query values taken: v2's names and v1's short ones. */
const PRECISIONS: Readonly<Record<string, Precision>> = { ns: 'ns', n: 'ns', us: 'us', u: 'us', ms: 'ms', s: 's' };
const FRACTION_DIGITS: Readonly<Record<Precision, number>> = { ns: 9, us: 6, ms: 3, s: 0 };
const RESERVED = new Set(['measurement', 'time']);
const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+i$/;
const UNSIGNED = /^\d+u$/;
/** InfluxDB's `i` is an int64, its `u` a uint64. */
const INT64_RANGE = [-(2n ** 63n), 2n ** 63n - 1n] as const;
const UINT64_RANGE = [0n, 2n ** 64n - 1n] as const;
/** Digits of 2^64 - 1, the longest number in either range. */
const MAX_INTEGER_DIGITS = 20;
/** Leading zeros, keeping the last digit of an all-zero number. */
const LEADING_ZEROS = /^0+(?=\d)/;
const PREVIEW_CHARS = 40;
const TRUE = new Set(['t', 'T', 'true', 'True', 'TRUE']);
const FALSE = new Set(['f', 'F', 'false', 'False', 'FALSE']);

export interface LineProtocolOptions {
  readonly precision: Precision;
  /** The request's received time: `time` for lines without a timestamp. */
  readonly receivedAt: number;
  readonly maxBatchRows: number;
}

/** `precision=` from the query (default ns); 400 for anything else. */
export function parsePrecision(value: unknown): Precision {
  if (value === undefined || value === '') return 'ns';
  const precision = typeof value === 'string' ? PRECISIONS[value] : undefined;
  if (precision === undefined) throw new BadRequestError(`precision must be ns, us, ms or s, got ${JSON.stringify(value)}`, 'BAD_PRECISION');
  return precision;
}

export function parseLineProtocol(text: string, options: LineProtocolOptions): Reading[] {
  const readings: Reading[] = [];
  const lines = text.split('\n').map((raw) => (raw.endsWith('\r') ? raw.slice(0, -1) : raw));
  const isData = (line: string): boolean => line.trim() !== '' && !line.trimStart().startsWith('#');
  // SPEC section 9: size (413) is checked before the body's content (400).
  const count = lines.filter(isData).length;
  if (count > options.maxBatchRows) {
    throw new PayloadTooLargeError(`the body has ${count} lines, more than MAX_BATCH_ROWS (${options.maxBatchRows})`, 'BATCH_TOO_LARGE');
  }
  for (const [index, line] of lines.entries()) {
    if (isData(line)) readings.push(parseLine(line, `line ${index + 1}: `, options));
  }
  if (readings.length === 0) throw new BadRequestError('the body has no lines', 'EMPTY_BODY');
  return readings;
}

function parseLine(line: string, where: string, options: LineProtocolOptions): Reading {
  const bad = (what: string): never => {
    throw new BadRequestError(`${where}${what}`, 'BAD_LINE_PROTOCOL');
  };
  const scanner = new Scanner(line);
  const reading = new ReadingBuilder(where);
  const name = (kind: string, key: string): string => {
    if (key === '') bad(`a ${kind} has an empty name`);
    if (RESERVED.has(key)) bad(`a ${kind} may not be named '${preview(key)}': that column is the server's`);
    return key;
  };

  const measurement = scanner.until(',', ' ');
  if (measurement === '') bad('the measurement is missing');
  reading.add('measurement', measurement);

  while (scanner.peek() === ',') {
    scanner.skip();
    const key = name('tag', scanner.until('=', ',', ' '));
    if (scanner.peek() !== '=') bad(`tag '${preview(key)}' has no '='`);
    scanner.skip();
    const value = scanner.until(',', ' ');
    if (value === '') bad(`tag '${preview(key)}' has an empty value`);
    reading.add(key, value);
  }
  if (scanner.peek() !== ' ') bad('expected a space and then fields');
  scanner.skip();

  let fields = 0;
  do {
    if (fields > 0) scanner.skip(); // the ','
    const key = name('field', scanner.until('=', ',', ' '));
    if (scanner.peek() !== '=') bad(`field '${preview(key)}' has no '='`);
    scanner.skip();
    reading.add(key, scanner.peek() === '"' ? scanner.quoted(() => bad(`field '${preview(key)}': the string is not closed`)) : fieldValue(key, scanner.until(',', ' '), bad));
    fields++;
  } while (scanner.peek() === ',');

  let time: string;
  if (scanner.peek() === ' ') {
    scanner.skip();
    time = formatTimestamp(scanner.rest().trim(), options.precision, bad);
  } else if (scanner.atEnd()) {
    time = new Date(options.receivedAt).toISOString();
  } else {
    return bad(`unexpected '${scanner.peek()}' after the fields`);
  }
  reading.add('time', time);
  return reading.build();
}

function fieldValue(key: string, text: string, bad: (what: string) => never): string {
  if (INTEGER.test(text)) return integerValue(key, text, 'signed', bad);
  if (UNSIGNED.test(text)) return integerValue(key, text, 'unsigned', bad);
  if (TRUE.has(text)) return 'true';
  if (FALSE.has(text)) return 'false';
  if (FLOAT.test(text)) {
    const value = Number(text);
    if (Number.isFinite(value)) return String(value);
  }
  return bad(`field '${preview(key)}' has an invalid value '${preview(text)}'`);
}

/**
 * `40i` or `40u` as its decimal text, refused outside the 64-bit range as
 * InfluxDB refuses it ("unable to parse integer …: value out of range").
 * The digits are counted before BigInt sees them: converting a 1 MB literal
 * cost 0.6 s of main-thread CPU (BigInt's decimal parse and print are not
 * linear), and no number of more than 20 significant digits is in range.
 */
function integerValue(key: string, text: string, kind: 'signed' | 'unsigned', bad: (what: string) => never): string {
  const negative = text.startsWith('-');
  const digits = text.slice(negative || text.startsWith('+') ? 1 : 0, -1).replace(LEADING_ZEROS, '');
  const [min, max] = kind === 'signed' ? INT64_RANGE : UINT64_RANGE;
  const value = digits.length <= MAX_INTEGER_DIGITS ? BigInt(negative ? `-${digits}` : digits) : undefined;
  if (value === undefined || value < min || value > max) {
    return bad(`field '${preview(key)}': ${preview(text)} is outside the ${kind} 64-bit integer range (${min} to ${max})`);
  }
  return value.toString();
}

/** A value as an error message shows it: a 1 MB one is not echoed whole. */
function preview(text: string): string {
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}

/** ISO 8601 UTC keeping the precision sent: ns gives 9 fractional digits, s none. */
function formatTimestamp(text: string, precision: Precision, bad: (what: string) => never): string {
  if (!/^-?\d{1,19}$/.test(text)) return bad(`the timestamp '${preview(text)}' is not a whole number`);
  const digits = FRACTION_DIGITS[precision];
  const perSecond = 10n ** BigInt(digits);
  const value = BigInt(text);
  let seconds = value / perSecond;
  let fraction = value % perSecond;
  if (fraction < 0n) {
    seconds -= 1n;
    fraction += perSecond;
  }
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) return bad(`the timestamp '${text}' is out of range`);
  const whole = date.toISOString().slice(0, 19);
  return digits === 0 ? `${whole}Z` : `${whole}.${fraction.toString().padStart(digits, '0')}Z`;
}

/**
 * Reads a line left to right, honouring backslash escapes. Plain text is
 * taken a run at a time (a sticky regex, then one slice), not a character at
 * a time: a 1 MB tag value costs one scan.
 */
class Scanner {
  private position = 0;
  private static readonly runs = new Map<string, RegExp>();

  constructor(private readonly line: string) {}

  peek(): string | undefined {
    return this.line[this.position];
  }

  skip(): void {
    this.position++;
  }

  atEnd(): boolean {
    return this.position >= this.line.length;
  }

  rest(): string {
    const rest = this.line.slice(this.position);
    this.position = this.line.length;
    return rest;
  }

  /** Text up to the first unescaped stop character; `\x` stands for x when x is a stop, `=` or `\`. */
  until(...stops: string[]): string {
    let text = this.run(stops.join(''));
    while (this.peek() === '\\') {
      const next = this.line[this.position + 1];
      if (next !== undefined && (stops.includes(next) || next === '=' || next === '\\' || next === ',' || next === ' ')) {
        text += next;
        this.position += 2;
      } else {
        text += '\\';
        this.position++;
      }
      text += this.run(stops.join(''));
    }
    return text;
  }

  /** A double-quoted field string, `\"` and `\\` unescaped. */
  quoted(unclosed: () => never): string {
    this.position++; // the opening quote
    let text = this.run('"');
    while (this.peek() === '\\') {
      const next = this.line[this.position + 1];
      if (next === '"' || next === '\\') {
        text += next;
        this.position += 2;
      } else {
        text += '\\';
        this.position++;
      }
      text += this.run('"');
    }
    if (this.atEnd()) return unclosed();
    this.position++; // the closing quote
    return text;
  }

  /** The text from here up to the next backslash or one of `stops`, whichever comes first. */
  private run(stops: string): string {
    let pattern = Scanner.runs.get(stops);
    if (pattern === undefined) {
      pattern = new RegExp(`[^${stops.replace(/[\\\]^-]/g, '\\$&')}\\\\]*`, 'y');
      Scanner.runs.set(stops, pattern);
    }
    pattern.lastIndex = this.position;
    pattern.test(this.line);
    const text = this.line.slice(this.position, pattern.lastIndex);
    this.position = pattern.lastIndex;
    return text;
  }
}
