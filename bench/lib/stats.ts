/** Order statistics over raw samples: what every benchmark reports (no pass/fail thresholds). */
export interface Stat {
  unit: string;
  n: number;
  min: number;
  median: number;
  p99: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile on sorted samples (p in 0..100): a value that was actually observed. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: readonly number[], unit: string): Stat {
  const sorted = [...samples].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = sorted.length;
  const mean = n === 0 ? Number.NaN : sorted.reduce((s, x) => s + x, 0) / n;
  return {
    unit,
    n,
    min: n ? sorted[0]! : Number.NaN,
    median: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean,
    max: n ? sorted[n - 1]! : Number.NaN,
  };
}

/** Rounds for reports: 3 significant figures, plain notation. */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString('en-US');
  return Number(x.toPrecision(3)).toString();
}
