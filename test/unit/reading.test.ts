import { describe, expect, it } from 'vitest';
import { BadRequestError, PayloadTooLargeError } from '../../src/shared/errors.js';
import { checkRequestWidth, parseReadings } from '../../src/storage/reading.js';

const limits = { maxBatchRows: 3 };

function reject(body: unknown): { status: number; code: string; message: string } {
  try {
    parseReadings(body, limits);
  } catch (error) {
    if (error instanceof BadRequestError || error instanceof PayloadTooLargeError) {
      return { status: error.statusCode, code: error.code, message: error.message };
    }
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('parseReadings', () => {
  it('takes one object as one reading, flattening nested objects with a dot', () => {
    expect(parseReadings({ t: 21.5, bme: { t: 21, h: { rel: 40 } }, ok: true, off: false, gone: null, list: [1, 'a'], empty: {} }, limits)).toEqual([
      {
        columns: ['t', 'bme.t', 'bme.h.rel', 'ok', 'off', 'gone', 'list'],
        cells: ['21.5', '21', '40', 'true', 'false', '', '[1,"a"]'],
      },
    ]);
  });

  it('keeps first-seen key order (integer-like keys: test/unit/json-text.test.ts)', () => {
    expect(parseReadings({ b: 1, a: 2 }, limits)[0]?.columns).toEqual(['b', 'a']);
  });

  it('counts arrays toward the nesting depth: 16 levels in all, a very deep one a 400, not a stack overflow', () => {
    const nested = (levels: number): unknown => (levels === 0 ? 1 : [nested(levels - 1)]);
    expect(parseReadings({ a: nested(15) }, limits)[0]?.cells).toEqual([JSON.stringify(nested(15))]);
    expect(reject({ a: nested(16) })).toEqual({ status: 400, code: 'TOO_DEEP', message: "key 'a' nests deeper than 16 levels" });
    expect(reject({ b: { a: [{ c: nested(14) }] } })).toMatchObject({ code: 'TOO_DEEP', message: "key 'b.a' nests deeper than 16 levels" });
    const deep = JSON.parse(`{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`) as Record<string, unknown>;
    expect(reject(deep)).toMatchObject({ status: 400, code: 'TOO_DEEP' });
  });

  it('prints numbers as JavaScript does', () => {
    expect(parseReadings({ a: 1e21, b: 0.1, c: -0 }, limits)[0]?.cells).toEqual(['1e+21', '0.1', '0']);
  });

  it('takes a batch of 1..MAX_BATCH_ROWS objects', () => {
    expect(parseReadings([{ a: 1 }, { b: 2 }], limits)).toHaveLength(2);
  });

  it.each([
    ['a string', 'hello', 400, 'BAD_SHAPE', 'the body is a string, expected a JSON object or an array of objects'],
    ['null', null, 400, 'BAD_SHAPE', 'the body is null, expected a JSON object or an array of objects'],
    ['an empty batch', [], 400, 'EMPTY_BATCH', 'the batch is empty: send 1 or more readings'],
    ['a batch holding a number', [{ a: 1 }, 5], 400, 'BAD_SHAPE', 'item 1 of the batch is a number, expected a JSON object'],
    ['a batch holding an array', [[1]], 400, 'BAD_SHAPE', 'item 0 of the batch is an array, expected a JSON object'],
    ['too many readings', [{}, {}, {}, {}], 413, 'BATCH_TOO_LARGE', 'the batch has 4 readings, more than MAX_BATCH_ROWS (3)'],
    ['an empty key', { '': 1 }, 400, 'BAD_KEY', 'a key is empty'],
    ['an empty nested key', { a: { '': 1 } }, 400, 'BAD_KEY', "a key is empty under 'a'"],
    ['received_at', { received_at: 'x' }, 400, 'RESERVED_KEY', "the key 'received_at' is the server's own column"],
    ['a flattened received_at', { received_at: { x: 1 }, ok: 1 }, 200, '', ''],
    ['a control character', { 'a\u0007': 1 }, 400, 'BAD_KEY', 'key "a\\u0007" holds a control character'],
    ['a C1 control character', { 'a\u0085': 1 }, 400, 'BAD_KEY', 'key "a\u0085" holds a control character'],
    ['a key of 129 characters', { ['k'.repeat(129)]: 1 }, 400, 'BAD_KEY', `key '${'k'.repeat(40)}…' is longer than 128 characters`],
    ['two values on one name', { 'a.b': 1, a: { b: 2 } }, 400, 'DUPLICATE_KEY', "keys 'a.b' and 'a.b' land on the same column"],
    ['keys that share a guarded column', { '=x': 1, "'=x": 2 }, 400, 'DUPLICATE_KEY', "keys '=x' and ''=x' land on the same column"],
    ['batch item errors name the item', [{ a: 1 }, { '': 1 }], 400, 'BAD_KEY', 'item 1: a key is empty'],
  ])('refuses %s', (_what, body, status, code, message) => {
    if (status === 200) {
      expect(parseReadings(body, limits)[0]?.columns).toEqual(['received_at.x', 'ok']);
      return;
    }
    expect(reject(body)).toEqual({ status, code, message });
  });

  it('refuses text that is not well-formed Unicode: a lone surrogate in a key or a value (SPEC section 11)', () => {
    expect(reject(JSON.parse('{"\\ud800":1}'))).toMatchObject({ status: 400, code: 'BAD_KEY', message: expect.stringMatching(/key "\\ud800" is not well-formed Unicode/) });
    expect(reject(JSON.parse('{"t":"a\\udc00b"}'))).toMatchObject({ status: 400, code: 'BAD_TEXT', message: expect.stringMatching(/value of key "t" is not well-formed Unicode/) });
    expect(reject(JSON.parse('{"n":{"\\udbff":1}}'))).toMatchObject({ status: 400, code: 'BAD_KEY' });
    // A pair is one code point, and is kept as sent.
    expect(parseReadings(JSON.parse('{"\\ud83d\\ude00":"\\ud83d\\ude00"}'), limits)[0]).toEqual({ columns: ['😀'], cells: ['😀'] });
  });

  it('takes a key of 128 characters, counted as characters not UTF-16 units', () => {
    expect(parseReadings({ ['😀'.repeat(128)]: 1 }, limits)[0]?.columns).toHaveLength(1);
  });

  it('limits the columns of a request over all its readings (SPEC section 11) and nesting depth', () => {
    const columns = (from: number, count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`c${from + i}`, i]));
    const widthOf = (body: unknown, max = 1024) => {
      try {
        checkRequestWidth(parseReadings(body, limits), max);
        return 'ok';
      } catch (error) {
        return (error as { code: string; statusCode: number; message: string });
      }
    };
    expect(widthOf(columns(0, 1024))).toBe('ok');
    expect(widthOf(columns(0, 1025))).toMatchObject({ statusCode: 400, code: 'TOO_MANY_COLUMNS', message: expect.stringMatching(/more than 1024 columns \(MAX_COLUMNS\)/) });
    // The union over a batch counts, not each reading: 2 readings of 600 different keys pass 1024.
    expect(widthOf([columns(0, 600), columns(600, 600)])).toMatchObject({ statusCode: 400, code: 'TOO_MANY_COLUMNS' });
    expect(widthOf([columns(0, 600), columns(0, 600)])).toBe('ok');
    // Keys that land on one header cell after the formula guard are one column.
    expect(widthOf([{ '=a': 1, b: 1 }, { "'=a": 1 }], 2)).toBe('ok');
    expect(widthOf([{ a: 1, b: 1 }, { c: 1 }], 2)).toMatchObject({ code: 'TOO_MANY_COLUMNS' });
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 15; i++) deep = { n: deep };
    expect(parseReadings(deep, limits)[0]?.columns[0]).toBe(`${'n.'.repeat(15)}leaf`);
    expect(reject({ n: deep })).toMatchObject({ status: 400, code: 'TOO_DEEP' });
  });
});
