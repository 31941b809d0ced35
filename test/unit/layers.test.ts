/**
 * The folders are layers, and imports point one way (docs/architecture.md):
 * the programs → writer, nats → storage → shared. A file may import its own
 * folder and any lower layer, never a higher one, and nothing imports an
 * entry point. The writer thread's code imports no Express or prom-client.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');

/** Each folder's layer: higher may import lower. */
const LAYERS: Record<string, number> = {
  types: 0,
  shared: 0,
  storage: 1,
  writer: 2,
  nats: 2,
  server: 3,
  forwarder: 3,
  collector: 4,
  ingest: 4,
  '.': 5, // main.ts and collect.ts
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'public' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const folderOf = (file: string): string => relative(SRC, file).split('/').slice(0, -1)[0] ?? '.';

/** Every import of `file`: relative ones resolved to src paths, packages by name. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => (m[1] ?? m[2]) as string);
  return specifiers.map((spec) => (spec.startsWith('.') ? resolve(dirname(file), spec).replace(/\.js$/, '.ts') : spec));
}

describe('src layering', () => {
  const files = sourceFiles(SRC);

  it('knows every folder', () => {
    expect(files.map(folderOf).filter((folder) => LAYERS[folder] === undefined)).toEqual([]);
  });

  it('imports point one way: own folder or a lower layer, never an entry point', () => {
    const upward: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      for (const target of importsOf(file).filter((spec) => spec.startsWith(SRC))) {
        const to = folderOf(target);
        const entry = to === '.';
        if (entry || (to !== from && (LAYERS[to] as number) >= (LAYERS[from] as number))) {
          upward.push(`${relative(SRC, file)} → ${relative(SRC, target)}`);
        }
      }
    }
    expect(upward).toEqual([]);
  });

  it('keeps Express, prom-client and the NATS client out of the writer thread and the storage layer', () => {
    const heavy = /^(express|prom-client|helmet|pino|@nats-io\/.*)$/;
    const offenders = files
      .filter((file) => ['storage', 'shared'].includes(folderOf(file)) || relative(SRC, file).startsWith('writer/worker/'))
      .flatMap((file) => importsOf(file).filter((spec) => heavy.test(spec)).map((spec) => `${relative(SRC, file)} → ${spec}`))
      // The logger is pino's, and lives in shared/ for both programs; the thread never imports it.
      .filter((line) => !line.startsWith('shared/logger.ts → pino'));
    expect(offenders).toEqual([]);
  });
});
