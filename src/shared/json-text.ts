/**
 * JSON.parse for request bodies, keeping each object's keys in the order the
 * text has them (SPEC section 4: columns in first-seen order).
 *
 * A JavaScript object lists array-index keys ("1", "20") before all others,
 * wherever they stand in the text. Such keys are rare in readings, so the
 * text is parsed as usual, and only when the result holds one is it parsed
 * again with every key prefixed by KEY_MARK: no longer an index, so kept in
 * text order. flattenReading takes the mark off.
 */

/** A control character: never in a key that the key rules allow, so it cannot be confused with one. */
export const KEY_MARK = '\u0001';

export interface ParsedJson {
  readonly value: unknown;
  /** KEY_MARK when every object key in `value` carries it, else ''. */
  readonly keyMark: string;
}

/** Deeper than any reading may nest (MAX_DEPTH), so the search ends on hostile input. */
const SEARCH_DEPTH = 64;
/** A JSON string token, and the colon after it when it is a key. JSON outside strings has no `"`. */
const STRING_TOKEN = /"(?:[^"\\]|\\.)*"(\s*:)?/g;

/** Throws JSON.parse's SyntaxError on text that is not JSON. */
export function parseJsonText(text: string): ParsedJson {
  const value: unknown = JSON.parse(text);
  if (!hasIndexKey(value, 0)) return { value, keyMark: '' };
  const marked = text.replace(STRING_TOKEN, (token, colon: string | undefined) => (colon === undefined ? token : `"\\u0001${token.slice(1)}`));
  return { value: JSON.parse(marked), keyMark: KEY_MARK };
}

/** An array index: the kind of key an object lists first. */
export function isIndexKey(key: string): boolean {
  const first = key.charCodeAt(0);
  return first >= 48 && first <= 57 && /^(?:0|[1-9]\d{0,9})$/.test(key) && Number(key) < 2 ** 32 - 1;
}

function hasIndexKey(value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null || depth > SEARCH_DEPTH) return false;
  if (Array.isArray(value)) return value.some((item) => hasIndexKey(item, depth + 1));
  const record = value as Record<string, unknown>;
  let first = true;
  for (const key in record) {
    // Index keys come first, so the first key tells whether there is one.
    if (first && isIndexKey(key)) return true;
    first = false;
    if (hasIndexKey(record[key], depth + 1)) return true;
  }
  return false;
}
