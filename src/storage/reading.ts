/**
 * Turns a parsed request body into readings: flat lists of column names and
 * cell texts, checked against SPEC sections 3 and 9. Pure: no I/O, no clock.
 */
import { RECEIVED_AT, guardCell } from './csv.js';
import { BadRequestError, PayloadTooLargeError } from '../shared/errors.js';

/** One reading, flattened: `columns[i]` holds `cells[i]`, in first-seen order. */
export interface Reading {
  readonly columns: string[];
  readonly cells: string[];
}

export interface ReadingLimits {
  readonly maxBatchRows: number;
}

/**
 * A reading's columns stop being collected past this (MAX_COLUMNS' own ceiling);
 * the configured MAX_COLUMNS is checked over the whole request (checkRequestWidth).
 */
const MAX_READING_COLUMNS = 100_000;
/** SPEC section 9: nesting depth 16. */
export const MAX_DEPTH = 16;
export const MAX_KEY_LENGTH = 128;
// Unicode category Cc: C0 controls, DEL and C1 controls.
const CONTROL_CHARS = /\p{Cc}/u;
// With the u flag a surrogate pair is one code point, so this finds only a lone half: text that is not well-formed.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * A JSON object is one reading; an array of 1..maxBatchRows objects is a
 * batch, taken whole or refused whole.
 */
export function parseReadings(body: unknown, limits: ReadingLimits, keyMark = ''): Reading[] {
  if (Array.isArray(body)) {
    if (body.length === 0) throw new BadRequestError('the batch is empty: send 1 or more readings', 'EMPTY_BATCH');
    if (body.length > limits.maxBatchRows) {
      throw new PayloadTooLargeError(
        `the batch has ${body.length} readings, more than MAX_BATCH_ROWS (${limits.maxBatchRows})`,
        'BATCH_TOO_LARGE',
      );
    }
    return body.map((item, index) => {
      if (!isPlainObject(item)) {
        throw new BadRequestError(`item ${index} of the batch is ${describe(item)}, expected a JSON object`, 'BAD_SHAPE');
      }
      return flattenReading(item, `item ${index}: `, keyMark);
    });
  }
  if (!isPlainObject(body)) {
    throw new BadRequestError(`the body is ${describe(body)}, expected a JSON object or an array of objects`, 'BAD_SHAPE');
  }
  return [flattenReading(body, '', keyMark)];
}

/**
 * Collects one reading's columns in first-seen order, enforcing the key
 * rules: `where` prefixes error messages (`item 3: `, `line 7: `).
 */
export class ReadingBuilder {
  private readonly columns: string[] = [];
  private readonly cells: string[] = [];
  // Keyed by the guarded name: `=x` and `'=x` would share one CSV column.
  private readonly seen = new Map<string, string>();

  constructor(private readonly where: string) {}

  /** `sent`: the key as its sender wrote it, for the key rules (the collector's keys are guarded header cells). */
  add(name: string, cell: string, sent = name): void {
    if (name === '') throw new BadRequestError(`${this.where}a key is empty`, 'BAD_KEY');
    checkKey(sent, this.where);
    const column = guardCell(name);
    const earlier = this.seen.get(column);
    if (earlier !== undefined) {
      throw new BadRequestError(`${this.where}keys '${earlier}' and '${name}' land on the same column`, 'DUPLICATE_KEY');
    }
    if (LONE_SURROGATE.test(cell)) {
      throw new BadRequestError(`${this.where}the value of key ${JSON.stringify(name)} is not well-formed Unicode (a lone surrogate)`, 'BAD_TEXT');
    }
    this.seen.set(column, name);
    if (this.columns.length === MAX_READING_COLUMNS) {
      throw new BadRequestError(`${this.where}the reading has more than ${MAX_READING_COLUMNS} columns`, 'TOO_MANY_COLUMNS');
    }
    this.columns.push(name);
    this.cells.push(cell);
  }

  build(): Reading {
    return { columns: this.columns, cells: this.cells };
  }
}

/**
 * Flattens nested objects with `.`; arrays become their JSON text.
 * `keyMark`: every key starts with it (see formats/json-text.ts), and it is taken off.
 */
export function flattenReading(object: Record<string, unknown>, where: string, keyMark = ''): Reading {
  const reading = new ReadingBuilder(where);
  const visit = (node: Record<string, unknown>, prefix: string, depth: number): void => {
    if (depth > MAX_DEPTH) {
      throw new BadRequestError(`${where}key '${prefix.slice(0, -1)}' nests deeper than ${MAX_DEPTH} levels`, 'TOO_DEEP');
    }
    for (const marked of Object.keys(node)) {
      const key = marked.slice(keyMark.length);
      if (key === '') throw new BadRequestError(`${where}a key is empty${prefix ? ` under '${prefix.slice(0, -1)}'` : ''}`, 'BAD_KEY');
      const value = node[marked];
      if (isPlainObject(value)) visit(value, `${prefix + key}.`, depth + 1);
      else if (Array.isArray(value) && nestsDeeperThan(value, MAX_DEPTH - depth)) {
        throw new BadRequestError(`${where}key '${prefix + key}' nests deeper than ${MAX_DEPTH} levels`, 'TOO_DEEP');
      } else reading.add(prefix + key, cellText(value, keyMark));
    }
  };
  visit(object, '', 1);
  return reading.build();
}

/**
 * Whether an array cell holds arrays or objects more than `levels` deep (the
 * array itself is one). Counted without recursion: JSON.parse takes any depth,
 * and JSON.stringify of a very deep one would overflow the stack.
 */
function nestsDeeperThan(value: unknown[], levels: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [node, depth] = next;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > levels) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

/** SPEC section 9: null is empty, booleans true/false, numbers as JavaScript prints them. */
function cellText(value: unknown, keyMark: string): string {
  if (value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return keyMark === '' ? JSON.stringify(value) : unmarkedJson(value, keyMark);
}

/** JSON.stringify's text of an array whose objects' keys carry `keyMark`, without it and in their order. */
function unmarkedJson(value: unknown, keyMark: string): string {
  if (Array.isArray(value)) return `[${value.map((item) => unmarkedJson(item, keyMark)).join(',')}]`;
  if (isPlainObject(value)) {
    return `{${Object.keys(value)
      .map((key) => `${JSON.stringify(key.slice(keyMark.length))}:${unmarkedJson(value[key], keyMark)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function checkKey(name: string, where: string): void {
  if (name === RECEIVED_AT) {
    throw new BadRequestError(`${where}the key '${RECEIVED_AT}' is the server's own column`, 'RESERVED_KEY');
  }
  if (name.length > MAX_KEY_LENGTH && [...name].length > MAX_KEY_LENGTH) {
    throw new BadRequestError(`${where}key '${name.slice(0, 40)}…' is longer than ${MAX_KEY_LENGTH} characters`, 'BAD_KEY');
  }
  if (CONTROL_CHARS.test(name)) {
    throw new BadRequestError(`${where}key ${JSON.stringify(name)} holds a control character`, 'BAD_KEY');
  }
  // SPEC section 11: a lone surrogate would be written as U+FFFD and read back as another key.
  if (LONE_SURROGATE.test(name)) {
    throw new BadRequestError(`${where}key ${JSON.stringify(name)} is not well-formed Unicode (a lone surrogate)`, 'BAD_KEY');
  }
}

/**
 * SPEC section 11: the columns of one request (the union over its readings,
 * as header cells) are at most MAX_COLUMNS, so no request widens a file by
 * more, and a file whose header would pass it can start again with them.
 */
export function checkRequestWidth(readings: readonly Reading[], maxColumns: number): void {
  const columns = new Set<string>();
  for (const reading of readings) {
    for (const column of reading.columns) columns.add(guardCell(column));
    if (columns.size > maxColumns) {
      throw new BadRequestError(
        `the request has more than ${maxColumns} columns (MAX_COLUMNS) over its readings; send fewer keys or split it`,
        'TOO_MANY_COLUMNS',
      );
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
