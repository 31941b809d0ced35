/**
 * What never reaches a log line or an error message: tokens and the
 * credentials a URL may carry (`user:pass@`, `token@`). One place for all of
 * it: the start-up line's config, a bad NATS_URL's message, and the errors of
 * the NATS client, which quote the URL they failed on.
 */
import type { Config } from './config.js';

export const REDACTED = '[redacted]';

/** Where the next address of a list begins: a comma before a scheme (a comma inside a password does not end it). */
const NEXT_ADDRESS = /,(?=\s*[a-z][a-z0-9+.-]*:\/\/)/i;
/** An address's credentials: everything up to its last `@`, even across line breaks (a password may hold any byte). */
const CREDENTIALS = /^(\s*[a-z][a-z0-9+.-]*:\/\/)?[\s\S]*@/i;
/** A URL's credentials inside free text: `scheme://` then user info up to `@` (a URL a client quotes is well formed). */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi;

/**
 * A list of addresses (NATS_URL as given) with each address's credentials
 * replaced by `[redacted]`, so the rest (a mistyped host) stays visible.
 * Everything up to the last `@` of each address goes, even in an address
 * that does not parse, so a slash, a comma or a line break inside a password
 * cannot leak part of it.
 */
export function hideCredentials(addresses: string): string {
  return addresses
    .split(NEXT_ADDRESS)
    .map((address) => address.replace(CREDENTIALS, `$1${REDACTED}@`))
    .join(',');
}

/**
 * An error's message with the credentials of every URL in it hidden: for
 * logging what a network client threw. Only a URL's user info goes; the rest
 * of the message (a host, a file path with an `@`) stays readable.
 */
export function safeMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(URL_CREDENTIALS, `$1${REDACTED}@`);
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
