import { BadRequestError } from '../../shared/errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as UTF-8 text (a leading byte-order mark dropped); 400 if it is not valid UTF-8. */
export function decodeUtf8(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch (error) {
    throw new BadRequestError('the body is not valid UTF-8', 'BAD_ENCODING', { cause: error });
  }
}
