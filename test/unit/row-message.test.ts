import * as nodeFs from 'node:fs';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readHeaderRecord, readRecords } from '../../src/storage/csv.js';
import { type RowMessage, cellColumns, encodeRowMessage, messageId, parseMessageId, rowBytes, validateRowMessage } from '../../src/nats/row-message.js';
import { flattenReading } from '../../src/storage/reading.js';
import { defaultWriteDeps, writeFileBatch } from '../../src/writer/worker/commit.js';
import { useTempDir } from '../support/temp-dir.js';

const SUBJECT = 'sensors.site-a.data';
const ID = 'site-a:0123456789abcdef:42';
const RECEIVED = '2026-11-23T10:15:00.000Z';

const base = (): Record<string, unknown> => ({ site: 'site-a', stream: 'data', file: 'data.csv', received_at: RECEIVED, cells: { t: '21.5', h: '' } });
const bytesOf = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const validate = (body: unknown, { subject = SUBJECT, id = ID }: { subject?: string; id?: string } = {}) => validateRowMessage(subject, id, bytesOf(body));
const why = (result: ReturnType<typeof validateRowMessage>): string => (result.ok ? 'accepted' : result.why);

describe('encodeRowMessage', () => {
  const message: RowMessage = { site: 'site-a', stream: 'data', file: 'data.csv', received_at: RECEIVED, cells: {} };

  it('is JSON with the five fields, cells as the columns map to the cells', () => {
    const text = encodeRowMessage(message, ['t', 'note'], ['21.5', 'a "b", c\nd']);
    expect(JSON.parse(text)).toEqual({ site: 'site-a', stream: 'data', file: 'data.csv', received_at: RECEIVED, cells: { t: '21.5', note: 'a "b", c\nd' } });
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['site', 'stream', 'file', 'received_at', 'cells']);
  });

  it('keeps the header order in the text even for integer-like column names', () => {
    const text = encodeRowMessage(message, ['1', 'b', '0'], ['x', 'y', 'z']);
    expect(text).toContain('"cells":{"1":"x","b":"y","0":"z"}');
    expect(text.indexOf('"1"')).toBeLessThan(text.indexOf('"b"'));
    expect(text.indexOf('"b"')).toBeLessThan(text.indexOf('"0"'));
  });

  it('fills cells missing at the end of a short record with ""', () => {
    expect((JSON.parse(encodeRowMessage(message, ['a', 'b'], ['1'])) as RowMessage).cells).toEqual({ a: '1', b: '' });
  });

  it('escapes names and cells so that the text stays one JSON object', () => {
    const text = encodeRowMessage({ ...message, file: 'd"a\\ta.csv' }, ['k"ey', 'ü'], ['\u2028', '日本🌸']);
    expect(JSON.parse(text)).toMatchObject({ file: 'd"a\\ta.csv', cells: { 'k"ey': '\u2028', ü: '日本🌸' } });
  });

  it('is accepted by validateRowMessage, which returns the message and where the row came from', () => {
    const text = encodeRowMessage(message, ['1', 'b', '0'], ['x', '', 'z']);
    const result = validateRowMessage(SUBJECT, ID, new TextEncoder().encode(text));
    expect(result).toEqual({
      ok: true,
      message: { site: 'site-a', stream: 'data', file: 'data.csv', received_at: RECEIVED, cells: { 1: 'x', b: '', 0: 'z' } },
      origin: { site: 'site-a', fileId: '0123456789abcdef', offset: 42 },
    });
  });
});

describe('messageId', () => {
  it('is <site>:<file id>:<offset> and parses back', () => {
    const origin = { site: 'pi_7', fileId: 'ffffffffffffffff', offset: 1_234_567_890_123 };
    expect(messageId(origin)).toBe('pi_7:ffffffffffffffff:1234567890123');
    expect(parseMessageId(messageId(origin))).toEqual(origin);
  });

  it.each([
    ['undefined', undefined],
    ['empty', ''],
    ['an upper-case file id', 'site-a:0123456789ABCDEF:0'],
    ['a short file id', 'site-a:0123:0'],
    ['a negative offset', 'site-a:0123456789abcdef:-1'],
    ['a 17-digit offset', 'site-a:0123456789abcdef:12345678901234567'],
    ['no offset', 'site-a:0123456789abcdef'],
    ['a bad site', 'Site:0123456789abcdef:0'],
    ['an extra part', 'site-a:0123456789abcdef:0:1'],
  ])('parses %s as null', (_what, id) => {
    expect(parseMessageId(id)).toBeNull();
  });
});

describe('validateRowMessage', () => {
  it('accepts a valid message, whatever the subject prefix', () => {
    expect(validate(base()).ok).toBe(true);
    expect(validate(base(), { subject: 'a.b.c.site-a.data' }).ok).toBe(true);
    expect(validate({ ...base(), cells: {} }).ok).toBe(true);
  });

  it('rejects bytes that are not JSON, or not UTF-8', () => {
    expect(validateRowMessage(SUBJECT, ID, new TextEncoder().encode('{"site":'))).toEqual({ ok: false, why: 'not JSON' });
    const text = JSON.stringify({ ...base(), cells: { t: 'XX' } });
    const bad = Buffer.from(text);
    bad[text.indexOf('XX')] = 0xff; // a lone byte that is no UTF-8
    expect(validateRowMessage(SUBJECT, ID, bad)).toEqual({ ok: false, why: 'not JSON' });
    // The same text with a proper two-byte character is fine.
    expect(validateRowMessage(SUBJECT, ID, Buffer.from(text.replace('XX', 'ÿ'))).ok).toBe(true);
  });

  it.each([
    ['an array', [base()]],
    ['null', null],
    ['a string', 'site-a'],
    ['a number', 7],
  ])('rejects %s', (_what, body) => {
    expect(why(validate(body))).toBe('not a JSON object');
  });

  it.each([
    ['site', 'site is not a name of a-z, 0-9, _ and -'],
    ['stream', 'stream is not a name of a-z, 0-9, _ and -'],
    ['file', 'file is missing or not a string'],
    ['received_at', 'received_at is not ISO 8601 UTC with milliseconds'],
    ['cells', 'cells is not an object'],
  ])('rejects a message without %s', (field, reason) => {
    const body = base();
    delete body[field];
    expect(why(validate(body))).toBe(reason);
  });

  it('rejects site or stream different from the subject’s last two tokens', () => {
    expect(why(validate(base(), { subject: 'sensors.site-b.data' }))).toBe('site and stream differ from the subject');
    expect(why(validate(base(), { subject: 'sensors.site-a.other' }))).toBe('site and stream differ from the subject');
    expect(why(validate(base(), { subject: 'sensors.data.site-a' }))).toBe('site and stream differ from the subject');
    expect(why(validate(base(), { subject: 'data' }))).toBe('site and stream differ from the subject');
  });

  it.each([['../x'], ['A'], ['a.b'], ['x'.repeat(65)], [''], ['a b'], ['a/b'], ['ü'], [7]])('rejects the hostile name %j as site or stream', (name) => {
    const subjectFor = (site: unknown, stream: unknown) => `sensors.${String(site)}.${String(stream)}`;
    expect(why(validate({ ...base(), site: name }, { subject: subjectFor(name, 'data'), id: `${String(name)}:0123456789abcdef:0` }))).toMatch(/^site is not a name/);
    expect(why(validate({ ...base(), stream: name }, { subject: subjectFor('site-a', name) }))).toMatch(/^stream is not a name/);
  });

  it('accepts names of 64 characters from a-z, 0-9, _ and -', () => {
    const name = `a_-0${'z'.repeat(60)}`;
    expect(validate({ ...base(), site: name, stream: name }, { subject: `p.${name}.${name}`, id: `${name}:0123456789abcdef:0` }).ok).toBe(true);
  });

  it.each([
    ['without milliseconds', '2026-11-23T10:15:00Z'],
    ['with microseconds', '2026-11-23T10:15:00.000000Z'],
    ['with an offset', '2026-11-23T10:15:00.000+01:00'],
    ['without a zone', '2026-11-23T10:15:00.000'],
    ['with a space', '2026-11-23 10:15:00.000Z'],
    ['in lower case', '2026-11-23t10:15:00.000z'],
    ['that is no date', '2026-13-45T10:15:00.000Z'],
    ['as epoch ms', 1_795_428_900_000],
  ])('rejects received_at %s', (_what, value) => {
    expect(why(validate({ ...base(), received_at: value }))).toBe('received_at is not ISO 8601 UTC with milliseconds');
  });

  it.each([
    ['a number', { t: 21.5 }],
    ['null', { t: null }],
    ['an object', { t: { x: '1' } }],
    ['an array', { t: ['1'] }],
    ['a boolean', { t: true }],
  ])('rejects a cell that is %s', (_what, cells) => {
    expect(why(validate({ ...base(), cells }))).toBe("cell 't' is not a string");
  });

  it.each([
    ['an array', ['1']],
    ['null', null],
    ['a string', 't=1'],
  ])('rejects cells that are %s', (_what, cells) => {
    expect(why(validate({ ...base(), cells }))).toBe('cells is not an object');
  });

  it('rejects cell keys that break the key rules of section 3', () => {
    expect(why(validate({ ...base(), cells: { received_at: RECEIVED } }))).toMatch(/received_at/);
    expect(why(validate({ ...base(), cells: { 'a\u0001b': '1' } }))).toMatch(/control character/);
    expect(why(validate({ ...base(), cells: { 'a\nb': '1' } }))).toMatch(/control character/);
    expect(why(validate({ ...base(), cells: { 'a\u0085b': '1' } }))).toMatch(/control character/);
    expect(why(validate({ ...base(), cells: { 'a\u007fb': '1' } }))).toMatch(/control character/);
    expect(why(validate({ ...base(), cells: { ['k'.repeat(129)]: '1' } }))).toMatch(/longer than 128 characters/);
  });

  it('accepts keys of 128 characters, counted as code points', () => {
    expect(validate({ ...base(), cells: { ['k'.repeat(128)]: '1' } }).ok).toBe(true);
    expect(validate({ ...base(), cells: { ['🌸'.repeat(128)]: '1' } }).ok).toBe(true);
    expect(validate({ ...base(), cells: { ['🌸'.repeat(129)]: '1' } }).ok).toBe(false);
  });

  it('takes a guarded header cell of 129 characters: the key rules hold for the key as it was sent (128 characters)', () => {
    const sent = `=${'a'.repeat(127)}`;
    expect(validate({ ...base(), cells: { [`'${sent}`]: '1' } }).ok).toBe(true);
    expect(validate({ ...base(), cells: { [`'${sent}a`]: '1' } }).ok).toBe(false);
  });

  it('rejects an empty cell key (section 3: keys are non-empty), which checkKey does not check', () => {
    expect(validate({ ...base(), cells: { '': '1' } }).ok).toBe(false);
  });

  it.each([
    ['=a', "'=a"],
    ["'+x", '+x'],
    ['@cmd', "'@cmd"],
    ['-x', "'-x"],
  ])('rejects cells %j and %j, which the formula guard puts on one column, as ingest rejects such a reading', (first, second) => {
    expect(why(validate({ ...base(), cells: { [first]: '1', [second]: '2' } }))).toBe(`keys '${first}' and '${second}' land on the same column`);
    expect(() => flattenReading({ [first]: '1', [second]: '2' }, '')).toThrow(`keys '${first}' and '${second}' land on the same column`);
  });

  it('refuses exactly what ingest refuses: the same rule, shared, not a copy', () => {
    // Numbers are not guarded: "-1" and "'-1" are two columns; "=1" is guarded and meets "'=1".
    const pairs = [['-1', "'-1"], ['+1.5e3', "'+1.5e3"], ['=1', "'=1"], ['a', "'a"], ["'", "''"], ['=', "'="], ['@', "'@"]];
    for (const [first = '', second = ''] of pairs) {
      const cells = { [first]: 'x', [second]: 'y' };
      let ingestRefuses = false;
      try {
        flattenReading(cells, '');
      } catch {
        ingestRefuses = true;
      }
      expect(validate({ ...base(), cells }).ok, `${first} ${second}`).toBe(!ingestRefuses);
    }
    expect(validate({ ...base(), cells: { '-1': 'x', "'-1": 'y' } }).ok).toBe(true);
    expect(validate({ ...base(), cells: { '=1': 'x', "'=1": 'y' } }).ok).toBe(false);
  });

  it('rejects a cell that is not well-formed Unicode (a lone surrogate would be written as U+FFFD), as ingest does', () => {
    const text = JSON.stringify({ ...base(), cells: { t: 'SURROGATE' } }).replace('SURROGATE', '\\ud800');
    expect(why(validateRowMessage(SUBJECT, ID, Buffer.from(text)))).toBe('the value of key "t" is not well-formed Unicode (a lone surrogate)');
  });

  it('rejects a Nats-Msg-Id that is missing, malformed, or names another site', () => {
    const bad = 'Nats-Msg-Id is not <site>:<file id>:<offset>';
    expect(why(validateRowMessage(SUBJECT, undefined, bytesOf(base())))).toBe(bad);
    expect(why(validate(base(), { id: '' }))).toBe(bad);
    expect(why(validate(base(), { id: 'site-b:0123456789abcdef:42' }))).toBe(bad);
    expect(why(validate(base(), { id: 'site-a:0123456789abcdef' }))).toBe(bad);
    expect(why(validate(base(), { id: 'site-a:../../etc:1' }))).toBe(bad);
  });

  it('rejects a file name that is not a string', () => {
    expect(why(validate({ ...base(), file: 3 }))).toBe('file is missing or not a string');
  });
});

describe('rowBytes', () => {
  const dir = useTempDir();

  const at = Date.UTC(2026, 10, 23, 10, 15, 0);
  const row = (columns: string[], cells: string[], ms = 0) => ({ receivedAt: at + ms, columns, cells });

  /** The messages the forwarder would send for every row of a CSV file, checked as the collector checks them. */
  function messagesOf(path: string): Array<{ offset: number; message: RowMessage }> {
    const fd = openSync(path, 'r');
    try {
      const size = statSync(path).size;
      const header = readHeaderRecord(nodeFs, fd, size);
      if (header === null) throw new Error('no header');
      const { records, end } = readRecords(nodeFs, fd, header.end, size, 10_000);
      expect(end).toBe(size);
      return records.map((record) => {
        const text = encodeRowMessage(
          { site: 'site-a', stream: 'data', file: 'data.csv', received_at: record.fields[0] ?? '', cells: {} },
          header.fields.slice(1),
          record.fields.slice(1),
        );
        const checked = validateRowMessage(SUBJECT, messageId({ site: 'site-a', fileId: '0123456789abcdef', offset: record.offset }), Buffer.from(text));
        if (!checked.ok) throw new Error(checked.why);
        expect(checked.origin.offset).toBe(record.offset);
        return { offset: record.offset, message: checked.message };
      });
    } finally {
      closeSync(fd);
    }
  }

  it('equals the byte length of each row line the real writer wrote: quotes, newlines, non-ASCII, empty and formula-guarded cells', async () => {
    const rows = [
      row(['1', 'b', '0', '=f', 'city'], ['42', 'plain', '0', '=SUM(A1:A2)', 'Zürich']),
      row(['b', '1'], ['"quoted", with comma', '-7'], 1),
      row(['b', 'city', '=f'], ['line1\nline2\r\nline3', '日本🌸', '@cmd'], 2),
      row(['0', '=f', 'b'], ['+x', '=a,"b"', ''], 3),
      row(['1', 'b', 'city', '0'], ['\r', '\tTab', 'ÿ€', '-1e5'], 4),
      row(['=f'], ['-'], 5),
      row(['city'], ['""'], 6),
    ];
    const outcome = await writeFileBatch(dir.path, { fileName: 'data.csv', rows }, { ...defaultWriteDeps, now: () => at });
    expect(outcome.ok).toBe(true);
    const path = join(dir.path, 'data.csv');
    const file = readFileSync(path);
    // The guard really ran: the file holds the guarded cells, which is what the messages carry.
    expect(file.toString('utf8')).toContain(`"'=a,""b"""`);
    expect(file.toString('utf8')).toContain(`'=SUM(A1:A2)`);

    const messages = messagesOf(path);
    expect(messages).toHaveLength(rows.length);
    expect(messages[0]?.message.cells).toEqual({ 1: '42', b: 'plain', 0: '0', "'=f": "'=SUM(A1:A2)", city: 'Zürich' });
    expect(messages[3]?.message.cells).toMatchObject({ "'=f": `'=a,"b"`, b: '', city: '' });
    for (let i = 0; i < messages.length; i++) {
      const { offset, message } = messages[i] as (typeof messages)[number];
      const next = messages[i + 1]?.offset ?? file.length;
      expect(rowBytes(message), `row ${i}`).toBe(next - offset);
      // Read straight from the bytes: the row line is exactly there, ending in its \n.
      expect(file[offset + rowBytes(message) - 1], `row ${i} ends in a newline`).toBe(0x0a);
    }
  });

  it('lets back-to-back rows across batches chain offset + rowBytes to the next row', async () => {
    const deps = { ...defaultWriteDeps, now: () => at };
    await writeFileBatch(dir.path, { fileName: 'data.csv', rows: [row(['v'], ['ä,ö'])] }, deps);
    await writeFileBatch(dir.path, { fileName: 'data.csv', rows: [row(['v'], ['"x"']), row(['v'], [''])] }, deps);
    await writeFileBatch(dir.path, { fileName: 'data.csv', rows: [row(['v'], ['=1+1'])] }, deps);
    const path = join(dir.path, 'data.csv');
    const messages = messagesOf(path);
    expect(messages).toHaveLength(4);
    let offset = messages[0]?.offset as number;
    for (const { offset: at, message } of messages) {
      expect(at).toBe(offset);
      offset += rowBytes(message);
    }
    expect(offset).toBe(statSync(path).size);
  });
});

describe('cellColumns and received_at, strictly', () => {
  it("keeps the message's column order when integer-like names would be moved first by a parsed object", () => {
    const text = encodeRowMessage({ site: 's', stream: 't', file: 't.csv', received_at: '2026-11-23T10:15:00.000Z', cells: {} }, ['temp', '2', 'a"b', '1'], ['21', 'x', 'y', 'z']);
    const data = new TextEncoder().encode(text);
    const checked = validateRowMessage('sensors.s.t', 's:0123456789abcdef:0', data);
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    expect(Object.keys(checked.message.cells)).toEqual(['1', '2', 'temp', 'a"b']);
    expect(cellColumns(data, checked.message.cells)).toEqual(['temp', '2', 'a"b', '1']);
  });

  it('refuses a received_at that is no real instant (February 30th)', () => {
    const text = JSON.stringify({ site: 's', stream: 't', file: 't.csv', received_at: '2026-02-30T00:00:00.000Z', cells: {} });
    expect(validateRowMessage('sensors.s.t', 's:0123456789abcdef:0', new TextEncoder().encode(text)).ok).toBe(false);
  });
});
