/**
 * `application/x-www-form-urlencoded`: one reading, each field a column
 * (`temp=21.5&door=open`), as microcontroller HTTP clients send it. Values
 * stay text. The key rules of SPEC section 3 apply.
 */
import { BadRequestError } from '../../shared/errors.js';
import { type Reading, ReadingBuilder } from '../../storage/reading.js';

export function parseFormBody(text: string): Reading[] {
  // Field names go straight to columns (a name with dots stays one column);
  // `__proto__` is a field like any other.
  const reading = new ReadingBuilder('');
  const seen = new Set<string>();
  for (const [key, value] of formFields(text)) {
    if (seen.has(key)) throw new BadRequestError(`field '${key}' is given twice`, 'DUPLICATE_KEY');
    seen.add(key);
    reading.add(key, value);
  }
  if (seen.size === 0) throw new BadRequestError('the form has no fields', 'EMPTY_BODY');
  return [reading.build()];
}

/**
 * The fields of a form body, decoded as URLSearchParams does (`+` is a space)
 * but strictly: a percent-encoding that is not UTF-8 (`%FF`, or `%ED%A0%80`,
 * a lone surrogate) is a 400, not a U+FFFD on disk (SPEC section 11).
 */
function formFields(text: string): Array<[string, string]> {
  const fields: Array<[string, string]> = [];
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const [name, value] = at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    fields.push([decodeFormText(name), decodeFormText(value)]);
  }
  return fields;
}

/** `+` as a space, each run of `%XX` as UTF-8 (strictly), a stray `%` kept as it is (as URLSearchParams keeps it). */
function decodeFormText(text: string): string {
  return text.replaceAll('+', ' ').replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      throw new BadRequestError(`the form field ${JSON.stringify(text.slice(0, 40))} is not percent-encoded UTF-8`, 'BAD_TEXT');
    }
  });
}
