import type { Stat } from './stats.js';

export type Cell = string | number | null;

export interface Table {
  title: string;
  columns: string[];
  rows: Cell[][];
}

export type SectionStatus = 'ok' | 'skipped' | 'partial' | 'failed';

/**
 * One benchmark's contribution to latest.json. A part that could not run says why in `skipped`
 * (never a made-up number); `metrics` hold distributions, `values` single figures.
 */
export interface SectionResult {
  id: string;
  title: string;
  status: SectionStatus;
  /** Why the section (or the named parts of it) did not run. */
  skipped: Record<string, string>;
  error?: string;
  durationMs: number;
  metrics: Record<string, Stat>;
  values: Record<string, number | string>;
  tables: Table[];
  notes: string[];
  /** Raw samples kept for charts (e.g. boot latency per backend, ms). */
  samples?: Record<string, number[]>;
}

export interface BenchContext {
  quick: boolean;
  /** Runs per latency series (boot, first byte). */
  runs: number;
  /** Seconds per dnsperf run. */
  dnsSeconds: number;
  /** Boot rows to run (by id, e.g. process-warm); empty: all. Selected rows share the section's whole budget. */
  rows: string[];
  /** Wall-clock budget for this section; modules stop sampling past it. */
  deadline: number;
  log: (message: string) => void;
  /** Repository root (where dist/ and build/ live). */
  root: string;
}

export interface Benchmark {
  id: string;
  title: string;
  run(ctx: BenchContext, out: SectionResult): Promise<void>;
}

export function emptySection(id: string, title: string): SectionResult {
  return { id, title, status: 'ok', skipped: {}, durationMs: 0, metrics: {}, values: {}, tables: [], notes: [] };
}
