import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests fork the built server (npm test builds first) and wait on real fsyncs.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    coverage: {
      enabled: true,
      provider: 'v8',
      include: ['src/**/*.ts'],
      // main.ts, collect.ts and the thread entry run only in child processes, which v8 coverage does not follow.
      exclude: ['src/main.ts', 'src/collect.ts', 'src/writer/worker/entry.ts'],
      reporter: ['text-summary'],
      thresholds: { lines: 85, functions: 85, branches: 75, statements: 85 },
    },
  },
});
