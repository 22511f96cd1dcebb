/**
 * The one door every boot goes through (queries, SYNs, automatic restarts): at most `maxBooting`
 * boots run at once across the daemon, and one client prefix may start at most `summonRate` new
 * boots per second. Beyond either the boot is not started and the caller gets `BOOT_REFUSED` at
 * once (a DNS query: SERVFAIL), so a flood of queries for many names cannot start every service at
 * once, and the daemon keeps answering everything else. Queries that find a service booting or
 * ready never come here: only a boot that would start counts.
 */
import { PrefixRateTable } from '../dns/rate-table.js';
import type { QuerySource } from '../dns/source.js';
import { JitsuError } from '../errors.js';
import type { CounterChild, MetricsRegistry } from '../observe/metrics.js';

export interface BootGateOptions {
  /** Boots in flight at once, daemon-wide (>= 1). */
  maxBooting: number;
  /** New boots per second per client prefix (/24, /56); 0 = no per-client limit. */
  summonRate: number;
  metrics: MetricsRegistry;
}

export type BootRefusal = 'max_booting' | 'client_rate';

export class BootGate {
  private inFlight = 0;
  private readonly maxBooting: number;
  private readonly perClient: PrefixRateTable | undefined;
  private readonly refused: Record<BootRefusal, CounterChild>;

  constructor(opts: BootGateOptions) {
    this.maxBooting = opts.maxBooting;
    this.perClient = opts.summonRate > 0 ? new PrefixRateTable({ rate: opts.summonRate, slots: 4096 }) : undefined;
    const family = opts.metrics.counter('jitsu_summons_refused_total', 'Boots not started (the query gets SERVFAIL at once), by reason: max_booting (--max-booting boots already run), client_rate (the client is over --summon-rate)');
    this.refused = { max_booting: family.labels({ reason: 'max_booting' }), client_rate: family.labels({ reason: 'client_rate' }) };
    opts.metrics.gauge('jitsu_boots_in_flight', 'Boots under way now (at most --max-booting)').labels().collect = () => this.inFlight;
  }

  /** Boots under way now. */
  get booting(): number {
    return this.inFlight;
  }

  /**
   * Runs `boot` if the gate admits it and counts it until it settles; otherwise returns the
   * refusal, for the caller to reject with. `source`: the client whose query asks for the boot
   * (undefined for SYNs and restarts: only the daemon-wide cap applies).
   */
  start(service: string, source: QuerySource | undefined, boot: () => Promise<void>): Promise<void> | JitsuError {
    if (this.inFlight >= this.maxBooting) return this.refuse('max_booting', service, `${this.maxBooting} boots are already under way (--max-booting)`);
    if (source !== undefined && this.perClient !== undefined && !this.perClient.take(source, source.receivedAt)) {
      return this.refuse('client_rate', service, 'this client starts boots faster than --summon-rate allows');
    }
    this.inFlight++;
    let running: Promise<void>;
    try {
      running = boot();
    } catch (err) {
      this.inFlight--;
      throw err;
    }
    return running.finally(() => this.inFlight--);
  }

  private refuse(reason: BootRefusal, service: string, why: string): JitsuError {
    this.refused[reason].inc();
    return new JitsuError('BOOT_REFUSED', `${service}: boot not started: ${why}; retry shortly`, { service, reason });
  }
}

/** No limits: for callers (unit tests) that build runtimes without a daemon. */
export function unlimitedBootGate(metrics: MetricsRegistry): BootGate {
  return new BootGate({ maxBooting: Number.POSITIVE_INFINITY, summonRate: 0, metrics });
}
