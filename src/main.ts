/**
 * The ingest server's entry point (`npm start`): the process runner
 * (server/process.ts) running the ingest program (ingest/program.ts).
 */
import { ingestProgram } from './ingest/program.js';
import { runProgram } from './server/process.js';

runProgram(ingestProgram);
