/** SPEC section 10's collector metrics, in the collector's registry. */
import { Counter, type Registry } from 'prom-client';

export interface CollectMetrics {
  rowsWritten(site: string, stream: string, rows: number): void;
  duplicate(): void;
  invalid(): void;
}

export function createCollectMetrics(registry: Registry): CollectMetrics {
  const registers = [registry];
  const rows = new Counter({
    name: 'collect_rows_total',
    help: 'Rows written to the central files, by site and stream.',
    labelNames: ['site', 'stream'] as const,
    registers,
  });
  const duplicates = new Counter({ name: 'collect_duplicates_total', help: 'Rows skipped because already written.', registers });
  const invalid = new Counter({ name: 'collect_invalid_total', help: 'Messages that are not valid rows, terminated unwritten.', registers });
  duplicates.inc(0);
  invalid.inc(0);
  return {
    rowsWritten: (site, stream, count) => rows.inc({ site, stream }, count),
    duplicate: () => duplicates.inc(),
    invalid: () => invalid.inc(),
  };
}
