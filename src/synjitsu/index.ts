/** Synjitsu's public surface: the factory the daemon calls, its options, limits and stats. */
export { createSynjitsu, Synjitsu, type SynjitsuOptions, type SynjitsuStats } from './synjitsu.js';
export { DEFAULT_LIMITS, type SynjitsuLimits } from './limits.js';
export { noMasker, type BootMasker, type MaskTarget, type SummonOnSyn } from './masker.js';
