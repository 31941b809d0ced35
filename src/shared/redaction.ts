/**
 * What never reaches a log line or an error message: tokens and the
 * credentials a URL may carry (`user:pass@`, `token@`). One place for all of
 * it: the start-up line's config, a bad NATS_URL's message, and the errors of
 * the NATS client, which quote the URL they failed on.
 */
import type { Config } from './config.js';

export const REDACTED = '[redacted]';

/** Where an address begins inside a text: a URL scheme, or the start of the text. */
const ADDRESS_START = /(?=\b[a-z][a-z0-9+.-]*:\/\/)/i;
/** An address's credentials: everything up to its last `@`, even across line breaks (a password may hold any byte). */
const CREDENTIALS = /^(\s*[a-z][a-z0-9+.-]*:\/\/)?[\s\S]*@/i;

/**
 * `text` with every address's credentials replaced by `[redacted]`, so the
 * rest (a mistyped host) stays visible. Everything up to the last `@` of
 * each address goes, even in an address that does not parse, so a comma, a
 * slash or a line break inside a password cannot leak part of it.
 */
export function hideCredentials(text: string): string {
  return text
    .split(ADDRESS_START)
    .map((address) => (address.includes('@') ? address.replace(CREDENTIALS, `$1${REDACTED}@`) : address))
    .join('');
}

/** An error's message with credentials hidden: for logging what a network client threw. */
export function safeMessage(error: unknown): string {
  return hideCredentials(error instanceof Error ? error.message : String(error));
}

/** The config as it may be logged: tokens replaced, NATS credentials hidden. */
export function redactConfig(config: Config): Record<string, unknown> {
  const redact = (value: string | undefined) => (value === undefined ? undefined : REDACTED);
  return {
    ...config,
    ingestToken: redact(config.ingestToken),
    readToken: redact(config.readToken),
    natsUrl: config.natsUrl?.map(hideCredentials),
  };
}
