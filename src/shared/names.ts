/**
 * The one name pattern (SPEC sections 2 and 10): a stream, a site and a
 * central folder are named with 1 to 64 of a-z, 0-9, `_` and `-`. Such a name
 * is safe as a file name, a URL path segment and a NATS subject token.
 */

/** The pattern's body, for building larger patterns (a message id). */
export const NAME_PATTERN = '[a-z0-9_-]{1,64}';
export const NAME = new RegExp(`^${NAME_PATTERN}$`);
/** How the rule reads in an error message. */
export const NAME_RULE = '1 to 64 characters from a-z, 0-9, _ and -';

/** A name made from any text (SITE_ID from the host name): lower-cased, other characters as '-'. */
export function nameFrom(text: string, fallback: string): string {
  const name = text.toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 64);
  return name === '' ? fallback : name;
}
