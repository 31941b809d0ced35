/**
 * `application/x-www-form-urlencoded`: one reading, each field a column
 * (`temp=21.5&door=open`), as microcontroller HTTP clients send it. Values
 * stay text. The key rules of SPEC section 3 apply.
 */
import { BadRequestError } from '../errors.js';
import { type Reading, ReadingBuilder } from '../reading.js';

export function parseFormBody(text: string): Reading[] {
  // Field names go straight to columns (a name with dots stays one column);
  // `__proto__` is a field like any other.
  const reading = new ReadingBuilder('');
  const seen = new Set<string>();
  for (const [key, value] of new URLSearchParams(text)) {
    if (seen.has(key)) throw new BadRequestError(`field '${key}' is given twice`, 'DUPLICATE_KEY');
    seen.add(key);
    reading.add(key, value);
  }
  if (seen.size === 0) throw new BadRequestError('the form has no fields', 'EMPTY_BODY');
  return [reading.build()];
}
