import type { Benchmark } from '../lib/types.js';

export const firstByteBenchmark: Benchmark = {
  id: 'firstbyte',
  title: 'first-byte',
  async run(_ctx, out) {
    out.skipped['all'] = 'not written yet';
  },
};
