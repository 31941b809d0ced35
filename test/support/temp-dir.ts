/** Temp directories for tests, and their removal. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, onTestFinished } from 'vitest';

export interface TempDir {
  readonly path: string;
  readonly cleanup: () => void;
}

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'sensor-ingest-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * For a test file (or a describe): `dir.path` is a fresh temp directory in
 * every test, removed after it, once the afterEach hooks (which stop the
 * test's servers and writers) have run.
 */
export function useTempDir(prefix?: string): { readonly path: string } {
  let current: TempDir | undefined;
  beforeEach(() => {
    current = tempDir(prefix);
    // A beforeEach's returned function runs after every afterEach hook.
    return () => {
      current?.cleanup();
      current = undefined;
    };
  });
  return {
    get path(): string {
      if (current === undefined) throw new Error('useTempDir: no test is running');
      return current.path;
    },
  };
}

/**
 * Inside a test: a fresh temp directory, removed when the test has finished
 * (after its afterEach hooks), pass or fail.
 */
export function testDir(prefix?: string): string {
  const made = tempDir(prefix);
  onTestFinished(() => made.cleanup());
  return made.path;
}
