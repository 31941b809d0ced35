/**
 * Retries without duplicates (SPEC sections 8 and 9): a request carrying
 * `Idempotency-Key` (or `X-Request-Id`) whose key was already accepted on
 * that stream within IDEMPOTENCY_WINDOW_SEC gets the first answer again and
 * stores nothing. The key alone decides; the body is not compared.
 *
 * A key is claimed when its first request starts, so concurrent repeats wait
 * for that request's answer instead of racing it. It is kept only if that
 * request's rows were queued; otherwise it is released and a waiting repeat
 * is handled as a new request. At most IDEMPOTENCY_MAX_KEYS keys are kept,
 * the oldest forgotten first. Memory only: the window does not survive a restart.
 */

import { createHash } from 'node:crypto';

/**
 * SPEC section 11: the longest key taken. Keys are held in memory,
 * IDEMPOTENCY_MAX_KEYS of them, so their length bounds the store's size.
 */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;

/** The headers that carry a key, the first present one deciding. */
const KEY_HEADERS = ['Idempotency-Key', 'X-Request-Id'] as const;

/** A request's key and the header it came in; a key must be checked before it is claimed. */
export interface IdempotencyKey {
  readonly header: (typeof KEY_HEADERS)[number];
  readonly key: string;
}

/** The key a request carries, if any (an empty header is none). */
export function idempotencyKeyOf(get: (header: string) => string | undefined): IdempotencyKey | undefined {
  for (const header of KEY_HEADERS) {
    const key = get(header);
    if (key !== undefined && key !== '') return { header, key };
  }
  return undefined;
}

/** Why a key cannot be remembered, in words; undefined when it can. */
export function idempotencyKeyProblem({ header, key }: IdempotencyKey): string | undefined {
  if (key.length <= MAX_IDEMPOTENCY_KEY_LENGTH) return undefined;
  return `${header} is ${key.length} characters long; at most ${MAX_IDEMPOTENCY_KEY_LENGTH} are taken`;
}

/** What the first request was answered, to replay. */
export interface RecordedAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** A key's first request, as a repeat sees it. */
export interface FirstRequest {
  /** Settles once the first request has been answered (or has failed). */
  readonly answered: Promise<void>;
  /** Whether its rows were queued: the key counts as accepted. */
  readonly accepted: boolean;
  /** Its answer, when that was a success (2xx). */
  readonly answer?: RecordedAnswer;
  /** Settles once its rows are fsynced (set when accepted). */
  readonly stored?: Promise<void>;
  readonly rows?: number;
}

/** The first request holding a key: it reports what became of it. */
export interface KeyClaim {
  /** Its rows are on the queue; `stored` settles at their fsync. */
  accepted(rows: number, stored: Promise<void>): void;
  /** It was answered (call once, whatever the answer). */
  answered(answer: RecordedAnswer): void;
}

export type Claim = { readonly first: true; readonly claim: KeyClaim } | { readonly first: false; readonly earlier: FirstRequest };

export interface IdempotencyStore {
  claim(stream: string, key: string): Claim;
  readonly size: number;
}

interface Entry {
  expiresAt: number;
  answered: Promise<void>;
  accepted: boolean;
  answer?: RecordedAnswer;
  stored?: Promise<void>;
  rows?: number;
}

export interface IdempotencyOptions {
  readonly windowSec: number;
  readonly maxKeys: number;
  readonly now: () => number;
}

/**
 * A remembered key as 32 bytes (SHA-256 of stream and key) instead of up to
 * 128 characters: 100,000 keys are the largest thing the server keeps
 * (SPEC section 11's memory budget). Two keys share an id only if SHA-256
 * collides.
 */
function keyId(stream: string, key: string): string {
  return createHash('sha256').update(stream).update('\u0000').update(key).digest('binary'); // latin1: 32 one-byte characters
}

/** What a settled entry keeps instead of its own promises, so 100,000 remembered keys stay small. */
const SETTLED: Promise<void> = Promise.resolve();

export function createIdempotencyStore({ windowSec, maxKeys, now }: IdempotencyOptions): IdempotencyStore {
  const entries = new Map<string, Entry>();

  return {
    claim(stream, key) {
      // The memory bound rests on this; callers refuse a longer key with a 400 first.
      if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) throw new RangeError(`an idempotency key of ${key.length} characters was claimed`);
      const id = keyId(stream, key);
      const existing = entries.get(id);
      if (existing !== undefined && existing.expiresAt > now()) return { first: false, earlier: existing };
      entries.delete(id);

      let settle!: () => void;
      const entry: Entry = { expiresAt: now() + windowSec * 1000, answered: new Promise<void>((resolve) => (settle = resolve)), accepted: false };
      entries.set(id, entry);
      if (entries.size > maxKeys) entries.delete(entries.keys().next().value as string);
      return {
        first: true,
        claim: {
          accepted(rows, stored) {
            entry.accepted = true;
            entry.rows = rows;
            entry.stored = stored;
            void stored.then(() => {
              entry.stored = SETTLED;
            });
          },
          answered(answer) {
            if (!entry.accepted) {
              if (entries.get(id) === entry) entries.delete(id);
            } else if (answer.status >= 200 && answer.status < 300) {
              entry.answer = answer;
            }
            settle();
            entry.answered = SETTLED;
          },
        },
      };
    },
    get size() {
      return entries.size;
    },
  };
}
