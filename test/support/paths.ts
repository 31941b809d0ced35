/** Where things are: the checkout, and the built entry points the process tests run. */
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/** The ingest server's entry (`npm start`). */
export const MAIN = join(ROOT, 'dist', 'main.js');
/** The collector's entry (`npm run collect`). */
export const COLLECT = join(ROOT, 'dist', 'collect.js');
