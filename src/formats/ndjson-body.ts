/**
 * `application/x-ndjson`: one JSON object a line, all lines or none, as
 * buffered loggers send them. Blank lines are skipped; an error names its line.
 */
import { BadRequestError, PayloadTooLargeError } from '../errors.js';
import { type Reading, type ReadingLimits, flattenReading } from '../reading.js';

export function parseNdjsonBody(text: string, limits: ReadingLimits): Reading[] {
  const readings: Reading[] = [];
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    if (readings.length === limits.maxBatchRows) {
      throw new PayloadTooLargeError(`more than MAX_BATCH_ROWS (${limits.maxBatchRows}) readings`, 'BATCH_TOO_LARGE');
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new BadRequestError(`line ${index + 1}: not valid JSON: ${(error as Error).message}`, 'BAD_JSON', { cause: error });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new BadRequestError(`line ${index + 1}: expected a JSON object`, 'BAD_SHAPE');
    }
    readings.push(flattenReading(value as Record<string, unknown>, `line ${index + 1}: `));
  }
  if (readings.length === 0) throw new BadRequestError('the body has no readings', 'EMPTY_BODY');
  return readings;
}
