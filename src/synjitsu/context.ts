import type { Logger } from '../observe/log.js';
import type { FlowBudget } from './flowtable.js';
import type { KernelRelay } from './kernel-relay.js';
import type { SynjitsuLimits } from './limits.js';
import type { SynjitsuMetrics } from './metrics.js';
import type { RelayFilter } from './nft.js';
import type { Wire } from './wire.js';

/** What every masking module shares: one budget, one set of metrics, one wire, one nft table. */
export interface MaskContext {
  readonly limits: SynjitsuLimits;
  readonly budget: FlowBudget;
  readonly metrics: SynjitsuMetrics;
  readonly wire: Wire;
  readonly relayFilter: RelayFilter;
  /** The in-kernel translation of relayed connections; undefined: the daemon relays every segment. */
  readonly kernelRelay: KernelRelay | undefined;
  readonly logger: Logger;
  /** The set of IPs that need the capture may have changed (coalesced per event-loop turn). */
  refilter(): void;
  /** A flow starts (true) or ends (false) needing whole copies of kernel-translated frames; applies at once. */
  wholeRelayedFrames(wanted: boolean): void;
}
