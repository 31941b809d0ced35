/**
 * `application/x-ndjson`: one JSON object a line, all lines or none, as
 * buffered loggers send them. Blank lines are skipped; an error names its line.
 */
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.js';
import { type Reading, type ReadingLimits, flattenReading } from '../../storage/reading.js';
import { type ParsedJson, parseJsonText } from '../../shared/json-text.js';

export function parseNdjsonBody(text: string, limits: ReadingLimits): Reading[] {
  const readings: Reading[] = [];
  const lines = text.split('\n');
  // SPEC section 9: size (413) is checked before the body's content (400).
  const count = lines.filter((line) => line.trim() !== '').length;
  if (count > limits.maxBatchRows) {
    throw new PayloadTooLargeError(`the body has ${count} readings, more than MAX_BATCH_ROWS (${limits.maxBatchRows})`, 'BATCH_TOO_LARGE');
  }
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    let parsed: ParsedJson;
    try {
      parsed = parseJsonText(line);
    } catch (error) {
      throw new BadRequestError(`line ${index + 1}: not valid JSON: ${(error as Error).message}`, 'BAD_JSON', { cause: error });
    }
    const { value, keyMark } = parsed;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new BadRequestError(`line ${index + 1}: expected a JSON object`, 'BAD_SHAPE');
    }
    readings.push(flattenReading(value as Record<string, unknown>, `line ${index + 1}: `, keyMark));
  }
  if (readings.length === 0) throw new BadRequestError('the body has no readings', 'EMPTY_BODY');
  return readings;
}
