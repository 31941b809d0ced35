/**
 * One CSV row as a NATS message (SPEC section 10), and the checks the
 * collector makes before it writes anything a message says.
 *
 *   {"site","stream","file","received_at","cells":{column: cell}}
 *   Nats-Msg-Id: <site>:<file id>:<byte offset of the row>
 */
import { NAME, NAME_PATTERN } from '../shared/names.js';
import { RECEIVED_AT, encodeLine, unguardCell } from '../storage/csv.js';
import { isIndexKey, parseJsonText } from '../shared/json-text.js';
import { ReadingBuilder } from '../storage/reading.js';

export interface RowMessage {
  readonly site: string;
  readonly stream: string;
  /** The file's name when the row was sent; for people only. */
  readonly file: string;
  readonly received_at: string;
  /** Every column of the row's header but received_at, as the strings in the CSV. */
  readonly cells: Readonly<Record<string, string>>;
}

/** Where a row came from: the id JetStream and the collector de-duplicate on. */
export interface RowOrigin {
  readonly site: string;
  readonly fileId: string;
  readonly offset: number;
}

const RECEIVED_AT_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MSG_ID = new RegExp(`^(${NAME_PATTERN}):([0-9a-f]{16}):(\\d{1,16})$`);

export function messageId(origin: RowOrigin): string {
  return `${origin.site}:${origin.fileId}:${origin.offset}`;
}

export function parseMessageId(id: string | undefined): RowOrigin | null {
  const match = id === undefined ? null : MSG_ID.exec(id);
  if (match === null) return null;
  return { site: match[1] as string, fileId: match[2] as string, offset: Number(match[3]) };
}

/**
 * The message's JSON text. Built by hand so `cells` keeps the header's
 * column order (an object would move integer-like keys such as "1" first).
 */
export function encodeRowMessage(message: RowMessage, columns: readonly string[], cells: readonly string[]): string {
  let text = '{';
  for (let i = 0; i < columns.length; i++) text += `${i === 0 ? '' : ','}${JSON.stringify(columns[i])}:${JSON.stringify(cells[i] ?? '')}`;
  text += '}';
  return `{"site":${JSON.stringify(message.site)},"stream":${JSON.stringify(message.stream)},"file":${JSON.stringify(message.file)},"received_at":${JSON.stringify(message.received_at)},"cells":${text}}`;
}

export type Validated = { readonly ok: true; readonly message: RowMessage; readonly origin: RowOrigin } | { readonly ok: false; readonly why: string };

/**
 * SPEC section 10's valid message: all five fields; site and stream are
 * names and equal the subject's last two tokens; received_at is ISO 8601
 * UTC with milliseconds; cells an object of strings under section 3's key
 * rules, as ingest takes a reading. The id must name the same site.
 */
export function validateRowMessage(subject: string, id: string | undefined, data: Uint8Array): Validated {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, why: 'not a JSON object' };
  const { site, stream, file, received_at: receivedAt, cells } = body as Record<string, unknown>;
  if (typeof site !== 'string' || !NAME.test(site)) return { ok: false, why: 'site is not a name of a-z, 0-9, _ and -' };
  if (typeof stream !== 'string' || !NAME.test(stream)) return { ok: false, why: 'stream is not a name of a-z, 0-9, _ and -' };
  const tokens = subject.split('.');
  if (tokens.at(-2) !== site || tokens.at(-1) !== stream) return { ok: false, why: 'site and stream differ from the subject' };
  if (typeof file !== 'string') return { ok: false, why: 'file is missing or not a string' };
  // A real instant, written as it would be written again (`2026-02-30` is not one).
  if (typeof receivedAt !== 'string' || !RECEIVED_AT_FORMAT.test(receivedAt) || Number.isNaN(Date.parse(receivedAt)) || new Date(receivedAt).toISOString() !== receivedAt) {
    return { ok: false, why: 'received_at is not ISO 8601 UTC with milliseconds' };
  }
  if (typeof cells !== 'object' || cells === null || Array.isArray(cells)) return { ok: false, why: 'cells is not an object' };
  // Ingest's own rules for a reading (reading.ts), so the collector refuses what ingest
  // refuses (SPEC section 11): the key rules, no two keys on one column after the
  // formula guard (`=a` and `'=a` are both the header cell `'=a`, and one cell would
  // overwrite the other), and well-formed text.
  const reading = new ReadingBuilder('');
  for (const [key, value] of Object.entries(cells)) {
    if (typeof value !== 'string') return { ok: false, why: `cell '${key.slice(0, 40)}' is not a string` };
    try {
      // The key is the edge's header cell, guarded: the key rules (a length of 128) are for what was sent.
      reading.add(key, value, unguardCell(key));
    } catch (error) {
      return { ok: false, why: (error as Error).message };
    }
  }
  const origin = parseMessageId(id);
  if (origin === null || origin.site !== site) return { ok: false, why: 'Nats-Msg-Id is not <site>:<file id>:<offset>' };
  return { ok: true, message: { site, stream, file, received_at: receivedAt, cells: cells as Record<string, string> }, origin };
}

/** The row's length in the edge's CSV file: where the next row of that file begins. */
export function rowBytes(message: RowMessage): number {
  return Buffer.byteLength(encodeLine([message.received_at, ...Object.values(message.cells)]));
}

/**
 * The columns of a valid message's cells in the order the message has them.
 * A parsed object puts integer-like keys ("1", "2") first; the edge's header
 * order is kept by parsing the text in key order when there are such keys.
 */
export function cellColumns(data: Uint8Array, cells: Readonly<Record<string, string>>): string[] {
  const keys = Object.keys(cells);
  if (!keys.some(isIndexKey)) return keys;
  const { value, keyMark } = parseJsonText(new TextDecoder().decode(data));
  const ordered = (value as Record<string, Record<string, string>>)[`${keyMark}cells`] ?? {};
  return Object.keys(ordered).map((key) => key.slice(keyMark.length));
}

export { RECEIVED_AT };
