/**
 * `application/x-www-form-urlencoded`: one reading, each field a column
 * (`temp=21.5&door=open`), as microcontroller HTTP clients send it. Values
 * stay text. The key rules of SPEC section 3 apply.
 */
import { BadRequestError } from '../errors.js';
import { type Reading, flattenReading } from '../reading.js';

export function parseFormBody(text: string): Reading[] {
  const fields: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    if (Object.hasOwn(fields, key)) throw new BadRequestError(`field '${key}' is given twice`, 'DUPLICATE_KEY');
    fields[key] = value;
  }
  if (Object.keys(fields).length === 0) throw new BadRequestError('the form has no fields', 'EMPTY_BODY');
  // Field names with dots stay flat: there is no nesting in a form.
  return [flattenReading(fields, '')];
}
