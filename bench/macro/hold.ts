import type { Benchmark } from '../lib/types.js';

export const holdBenchmark: Benchmark = {
  id: 'hold',
  title: 'hold',
  async run(_ctx, out) {
    out.skipped['all'] = 'not written yet';
  },
};
