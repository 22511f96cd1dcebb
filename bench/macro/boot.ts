import type { Benchmark } from '../lib/types.js';

export const bootBenchmark: Benchmark = {
  id: 'boot',
  title: 'boot',
  async run(_ctx, out) {
    out.skipped['all'] = 'not written yet';
  },
};
