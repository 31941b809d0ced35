/** `application/json`: one object, or an array of objects (SPEC section 3). */
import { BadRequestError } from '../../shared/errors.js';
import { type Reading, type ReadingLimits, parseReadings } from '../../storage/reading.js';
import { type ParsedJson, parseJsonText } from '../../shared/json-text.js';

export function parseJsonBody(text: string, limits: ReadingLimits): Reading[] {
  let body: ParsedJson;
  try {
    body = parseJsonText(text);
  } catch (error) {
    throw new BadRequestError(`the body is not valid JSON: ${(error as Error).message}`, 'BAD_JSON', { cause: error });
  }
  return parseReadings(body.value, limits, body.keyMark);
}
