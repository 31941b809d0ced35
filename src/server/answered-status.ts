import type { Response } from 'express';

/**
 * The status a request was answered with, or 499 (nginx's "client closed
 * request") when the client left before the answer was sent. Read in a
 * response's 'close' handler, which runs for answered and aborted requests alike.
 */
export function answeredStatus(res: Response): number {
  return res.writableFinished ? res.statusCode : 499;
}
