/** pino-roll ships no types: the part this project uses. */
declare module 'pino-roll' {
  import type { DestinationStream } from 'pino';

  interface PinoRollOptions {
    file: string;
    extension?: string;
    size?: string | number;
    frequency?: string | number;
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    symlink?: boolean;
    mkdir?: boolean;
    /** sonic-boom's: the most bytes buffered before writes are dropped. */
    maxLength?: number;
  }

  export default function pinoRoll(options: PinoRollOptions): Promise<DestinationStream>;
}
