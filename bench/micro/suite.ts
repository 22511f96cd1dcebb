/**
 * Runs tinybench tasks that each perform a batch of operations per call, so timer overhead (tens of
 * ns) does not swamp operations that take tens of ns. Reports ns per operation and operations/s.
 */
import { Bench } from 'tinybench';
import { summarize, type Stat } from '../lib/stats.js';

/** Results of the measured work land here, so the JIT cannot drop it as dead code. */
export const blackhole: { value: number; keep: () => number } = { value: 0, keep: () => 0 };

export interface MicroTask {
  name: string;
  /** Operations performed by one call of `fn`. */
  batch: number;
  fn: () => void;
}

export interface MicroResult {
  name: string;
  nsPerOp: Stat;
  opsPerSecond: number;
}

export async function runMicro(tasks: readonly MicroTask[], timeMs: number): Promise<MicroResult[]> {
  const bench = new Bench({ time: timeMs, warmupTime: Math.max(20, timeMs / 5), iterations: 20, retainSamples: true, throws: true });
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  const out: MicroResult[] = [];
  for (const t of tasks) {
    const task = bench.getTask(t.name);
    const r = task?.result;
    if (!r || !('latency' in r)) throw new Error(`micro task ${t.name} produced no statistics (${r?.state ?? 'no result'})`);
    // Samples are ms per call; one call is `batch` operations.
    const samples = (r.latency.samples ?? []).map((ms) => (ms * 1e6) / t.batch);
    const nsPerOp = summarize(samples.length ? samples : [(r.latency.mean * 1e6) / t.batch], 'ns/op');
    out.push({ name: t.name, nsPerOp, opsPerSecond: 1e9 / nsPerOp.median });
  }
  return out;
}
