/**
 * The collector's entry point (`npm run collect`): the process runner
 * (server/process.ts) running the collector program (collector/program.ts).
 */
import { collectorProgram } from './collector/program.js';
import { runProgram } from './server/process.js';

runProgram(collectorProgram);
