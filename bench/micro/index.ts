/** Section `micro`: tinybench over the DNS codec/handler and Synjitsu's packet and flow-table code. */
import { fmt } from '../lib/stats.js';
import type { Benchmark } from '../lib/types.js';
import { dnsTasks } from './dns.js';
import { runMicro } from './suite.js';
import { synjitsuTasks } from './synjitsu.js';

export const microBenchmark: Benchmark = {
  id: 'micro',
  title: 'Micro benchmarks (tinybench, batches of 1000 operations per sample)',
  async run(ctx, out) {
    const timeMs = ctx.quick ? 60 : 600;
    const groups: [string, () => ReturnType<typeof dnsTasks>][] = [
      ['dns', dnsTasks],
      ['synjitsu', synjitsuTasks],
    ];
    const rows: (string | number)[][] = [];
    for (const [group, make] of groups) {
      let tasks;
      try {
        tasks = make();
      } catch (err) {
        out.skipped[group] = `could not set up: ${String(err)}`;
        continue;
      }
      ctx.log(`micro: ${group} (${tasks.length} tasks, ${timeMs} ms each)`);
      for (const r of await runMicro(tasks, timeMs)) {
        out.metrics[r.name] = r.nsPerOp;
        out.values[`${r.name} ops/s`] = Math.round(r.opsPerSecond);
        rows.push([r.name, fmt(r.nsPerOp.median), fmt(r.nsPerOp.p99), fmt(r.nsPerOp.min), fmt(r.opsPerSecond), r.nsPerOp.n]);
      }
    }
    out.tables.push({ title: 'Per-operation cost', columns: ['operation', 'median ns', 'p99 ns', 'min ns', 'ops/s (median)', 'samples'], rows });
    out.notes.push('Each sample times a batch of 1000 calls on one core; ns/op = batch time / 1000. Figures include the loop and the JIT-warm fast path only.');
  },
};
