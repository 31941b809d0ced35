/** Log lines for tests to assert on: a logger that keeps its lines, and JSON lines read from text. */
import { pino, type Logger } from 'pino';

/** A logger that keeps its lines in memory, for asserting on log messages. */
export function memoryLogger(level = 'info'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** The JSON lines of a log (a process's output, a log file), skipping any line that is not a whole JSON object (one still being written). */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}
