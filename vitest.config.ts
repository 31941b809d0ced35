import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests fork the built server (npm test builds first) and wait on real fsyncs.
    testTimeout: 60_000,
    // Two test files at a time, even on 2 cores (vitest's default there is one): most of the suite's time is
    // spent waiting on child processes, fsyncs and kills, not computing. Measured on this 2-core machine: the
    // whole suite in 353 s instead of 760 s, every test passing.
    maxWorkers: 2,
    hookTimeout: 60_000,
    coverage: {
      enabled: true,
      provider: 'v8',
      include: ['src/**/*.ts'],
      // The entry points, the process runner, the two programs and the thread entry run only in
      // child processes, which v8 coverage does not follow (the e2e and NATS tests run them).
      exclude: ['src/main.ts', 'src/collect.ts', 'src/server/process.ts', 'src/ingest/program.ts', 'src/collector/program.ts', 'src/writer/worker/entry.ts'],
      reporter: ['text-summary'],
      thresholds: { lines: 85, functions: 85, branches: 75, statements: 85 },
    },
  },
});
