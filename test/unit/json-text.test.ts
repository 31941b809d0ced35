import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KEY_MARK, isIndexKey, parseJsonText } from '../../src/shared/json-text.js';
import { parseJsonBody } from '../../src/ingest/formats/json-body.js';
import { parseNdjsonBody } from '../../src/ingest/formats/ndjson-body.js';

const limits = { maxBatchRows: 10 };

describe('isIndexKey', () => {
  it.each(['0', '1', '20', '4294967294'])('%s is a key an object lists first', (key) => expect(isIndexKey(key)).toBe(true));
  it.each(['', '01', '-1', '1.5', '4294967295', '99999999999', 'a1', '1a', ' 1'])('%j is not', (key) => expect(isIndexKey(key)).toBe(false));

  it('agrees with how V8 orders an object', () => {
    const keys = ['b', '4294967294', '4294967295', '01', '1', '-1', '0', 'a'];
    const parsed = Object.keys(JSON.parse(`{${keys.map((key) => `"${key}":0`).join(',')}}`) as object);
    expect(parsed.slice(0, 3)).toEqual(['0', '1', '4294967294']);
    expect(keys.filter(isIndexKey).sort()).toEqual(['0', '1', '4294967294']);
  });
});

describe('parseJsonText', () => {
  it('is JSON.parse, unmarked, when no object has an index key', () => {
    const text = '{"b":1,"a":{"c":[1,{"d":2}]},"01":3}';
    expect(parseJsonText(text)).toEqual({ value: JSON.parse(text), keyMark: '' });
  });

  it('marks every key, in text order, when one object has an index key, however deep', () => {
    const { value, keyMark } = parseJsonText('{"b":1,"a":{"c":[{"z":0,"3":1}]}}');
    expect(keyMark).toBe(KEY_MARK);
    const top = value as Record<string, Record<string, Array<Record<string, number>>>>;
    expect(Object.keys(top)).toEqual([`${KEY_MARK}b`, `${KEY_MARK}a`]);
    expect(Object.keys(top[`${KEY_MARK}a`]?.[`${KEY_MARK}c`]?.[0] ?? {})).toEqual([`${KEY_MARK}z`, `${KEY_MARK}3`]);
  });

  it('leaves strings that are values alone, escapes and colons inside them included', () => {
    const { value } = parseJsonText('{"t":"a\\":b","1":"x:y","\\u0031x":"\\"q\\""}');
    expect(Object.entries(value as object)).toEqual([
      [`${KEY_MARK}t`, 'a":b'],
      [`${KEY_MARK}1`, 'x:y'],
      [`${KEY_MARK}1x`, '"q"'],
    ]);
  });

  it('throws JSON.parse’s error on text that is not JSON', () => {
    expect(() => parseJsonText('{"1":')).toThrow(SyntaxError);
  });
});

describe('columns in first-seen order (SPEC section 4), integer-like keys included', () => {
  it('a JSON body: nested keys, and objects inside arrays as they were sent', () => {
    const [reading] = parseJsonBody('{"temp":21,"1":"a","b":{"2":"x","c":true},"arr":[{"z":1,"3":[2]}],"0":null}', limits);
    expect(reading).toEqual({ columns: ['temp', '1', 'b.2', 'b.c', 'arr', '0'], cells: ['21', 'a', 'x', 'true', '[{"z":1,"3":[2]}]', ''] });
  });

  it('a batch and NDJSON lines', () => {
    expect(parseJsonBody('[{"t":1,"7":2},{"x":3}]', limits).map((reading) => reading.columns)).toEqual([['t', '7'], ['x']]);
    expect(parseNdjsonBody('{"t":1,"7":2}\n{"9":1,"x":3}\n', limits).map((reading) => reading.columns)).toEqual([
      ['t', '7'],
      ['9', 'x'],
    ]);
  });

  it('the key rules still hold for marked keys: empty, received_at, a control character, a duplicate', () => {
    expect(() => parseJsonBody('{"1":1,"":2}', limits)).toThrow(/a key is empty/);
    expect(() => parseJsonBody('{"1":1,"received_at":2}', limits)).toThrow(/server's own column/);
    expect(() => parseJsonBody('{"1":1,"\\u0001x":2}', limits)).toThrow(/control character/);
    expect(() => parseJsonBody('{"1":1,"a":{"b":1},"a.b":2}', limits)).toThrow(/land on the same column/);
  });

  it('property: any object written key by key comes back with its keys in that order', () => {
    const key = fc.oneof(fc.nat({ max: 40 }).map(String), fc.constantFrom('a', 'b', 't', 'x y', 'é', 'a"b', '\\'), fc.string({ minLength: 1, maxLength: 6 }));
    const cell = fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 5 }));
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(key, cell), { selector: ([name]) => name, minLength: 1, maxLength: 12 }), (entries) => {
        fc.pre(entries.every(([name]) => name !== 'received_at' && !/\p{Cc}/u.test(name) && !name.includes('.')));
        const text = `{${entries.map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)}`).join(',')}}`;
        const [reading] = parseJsonBody(text, limits);
        expect(reading?.columns).toEqual(entries.map(([name]) => name));
        expect(reading?.cells).toEqual(entries.map(([, value]) => String(value)));
      }),
      { numRuns: 300 },
    );
  });
});
