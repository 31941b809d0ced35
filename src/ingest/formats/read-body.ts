/**
 * Reads a request body within MAX_REQUEST_BYTES, counting the bytes as sent
 * (compressed or not) and, for `Content-Encoding: gzip`, `deflate` or `br`,
 * the bytes after decompression too (SPEC section 9). Reading stops at the
 * limit, and zlib stops inflating at it, so neither a huge upload nor a gzip
 * bomb costs more than about the limit in memory.
 */
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../../shared/errors.js';

const DECODERS: Readonly<Record<string, (buffer: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress),
};

export class BodyTooLargeError extends PayloadTooLargeError {
  constructor(maxBytes: number) {
    super(`the body is larger than MAX_REQUEST_BYTES (${maxBytes} bytes)`);
  }
}

/** The body's bytes, decompressed; 413 past `maxBytes` either way, 415 for an unknown encoding. */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw new BodyTooLargeError(maxBytes);
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const decode = DECODERS[encoding];
  if (decode === undefined && encoding !== 'identity') {
    throw new UnsupportedMediaTypeError(`Content-Encoding '${encoding}' is not supported; send gzip, deflate, br or none`);
  }
  const raw = await collect(req, maxBytes);
  if (decode === undefined) return raw;
  try {
    return await decode(raw, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new BodyTooLargeError(maxBytes);
    throw new BadRequestError(`the body is not valid ${encoding}: ${(error as Error).message}`, 'BAD_ENCODING', { cause: error });
  }
}

function collect(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        req.resume(); // discard the rest; the 413 says Connection: close
        reject(new BodyTooLargeError(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(new BadRequestError(`the body could not be read: ${error.message}`, 'BAD_BODY', { cause: error }));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
