/**
 * Reads a number, and the unit after it, out of one cell: `21.5`, `-3.5`,
 * `1e3`, `"25.1C"`, `"1013 hPa"`, `"45%"`. Sensors often send their readings
 * as text with a unit; the dashboard charts them all. Pure.
 */

export interface NumericCell {
  readonly value: number;
  /** The text after the number (`C`, `hPa`, `%`), or `''`. */
  readonly unit: string;
}

/**
 * A decimal number (SPEC section 9's form), then optionally a unit: a letter
 * or one of `% ° µ ‰` first, then at most 15 letters, digits or `/ ² ³ · . _ -`
 * (`m/s`, `µg/m3`, `kWh`). A unit may not start with a digit or `:`, so a time
 * (`12:30`) or a date (`2026-11-23`) is not taken for a number.
 */
const NUMBER_WITH_UNIT = /^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*((?:\p{L}|[%°µ‰])[\p{L}\p{N}%°µ‰/²³·._-]{0,15})?\s*$/u;

/** Most cells: a plain decimal without exponent or unit, read without the full pattern (summaries read millions). */
const PLAIN_NUMBER = /^-?\d{1,15}(?:\.\d{1,15})?$/;

/** The value of a plain decimal cell (`21.5`, `-3`), or NaN for any other: then parseNumericCell says. */
export function plainNumber(cell: string): number {
  return PLAIN_NUMBER.test(cell) ? Number(cell) : Number.NaN;
}

/**
 * The number in `cell`, or null for text, an empty cell, `true`/`false`,
 * `NaN`, or a value too large for a double.
 */
export function parseNumericCell(cell: string): NumericCell | null {
  if (cell.length === 0 || cell.length > 64) return null;
  const plain = plainNumber(cell);
  if (!Number.isNaN(plain)) return { value: plain, unit: '' };
  const match = NUMBER_WITH_UNIT.exec(cell);
  if (match === null) return null;
  const value = Number(match[1]);
  if (!Number.isFinite(value)) return null;
  return { value, unit: match[2] ?? '' };
}
