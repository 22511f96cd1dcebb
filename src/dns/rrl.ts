/**
 * Response-rate limiting (RRL) of our own UDP answers, as Knot and NSD do it: a UDP query's source
 * can be forged, so without a limit anyone can aim our answers at a victim. Each client prefix
 * (/24, /56) gets `rate` answers per second (a token bucket, `rate-table.ts`); beyond it every
 * `slip`-th answer goes out truncated (TC=1, no records: no amplification, and a real client retries
 * over TCP, which is never limited since its handshake proves the source) and the rest are dropped.
 *
 * Loopback sources are never limited: no packet from off the host can carry one, and a local
 * caching resolver in front of us would otherwise put every client it serves into one bucket.
 */
import { PrefixRateTable } from './rate-table.js';
import { LOOPBACK, type QuerySource } from './source.js';

export interface RrlOptions {
  /** Answers per second per client prefix (> 0). */
  rate: number;
  /** Every slip-th limited answer is sent truncated; 0 drops them all, 1 truncates them all. */
  slip: number;
  /** Table slots (bounded memory); default 16384. */
  slots?: number;
}

/** What becomes of one answer: sent as is, dropped, or sent truncated (TC=1). */
export type RrlVerdict = 'send' | 'drop' | 'slip';

export class ResponseRateLimiter {
  readonly table: PrefixRateTable;
  private readonly slip: number;

  constructor(opts: RrlOptions) {
    this.table = new PrefixRateTable(opts.slots === undefined ? { rate: opts.rate } : { rate: opts.rate, slots: opts.slots });
    this.slip = opts.slip;
  }

  check(source: QuerySource): RrlVerdict {
    // Loopback first: a local resolver in front of us may send more than any bucket holds.
    if (LOOPBACK.contains(source) || this.table.take(source, source.receivedAt)) return 'send';
    return this.slip !== 0 && this.table.overCount() % this.slip === 0 ? 'slip' : 'drop';
  }
}
