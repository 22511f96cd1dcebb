/** Bounds on everything Synjitsu holds, so a flood or a slow boot costs bounded memory. */
export interface SynjitsuLimits {
  /** Handshaken connections held (buffering or relayed), all services. */
  maxFlows: number;
  maxFlowsPerService: number;
  /** Client bytes buffered per connection before the guest is ready (also the advertised window). */
  maxFlowBuffer: number;
  /** Client bytes buffered across all connections. */
  maxTotalBuffer: number;
  /** SYNs parked (strategy `park`), all services / per service. */
  maxParked: number;
  maxParkedPerService: number;
  /** A relayed connection silent this long is forgotten. */
  relayIdleMs: number;
  /** How long the guest has to answer a handed-over SYN before the client is reset. */
  handoverTimeoutMs: number;
  /**
   * Held connections of a service neither ready() nor failed() after this long are reset (a lost
   * lifecycle call must not hold clients forever).
   */
  maxMaskMs: number;
}

export const DEFAULT_LIMITS: SynjitsuLimits = {
  maxFlows: 65536,
  maxFlowsPerService: 16384,
  maxFlowBuffer: 64 * 1024,
  maxTotalBuffer: 256 * 1024 * 1024,
  maxParked: 65536,
  maxParkedPerService: 16384,
  relayIdleMs: 10 * 60 * 1000,
  handoverTimeoutMs: 5000,
  maxMaskMs: 300_000,
};

export function resolveLimits(partial: Partial<SynjitsuLimits> = {}): SynjitsuLimits {
  const out = { ...DEFAULT_LIMITS, ...partial };
  for (const [key, value] of Object.entries(out)) {
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`synjitsu limit ${key} must be a positive integer, got ${String(value)}`);
  }
  return out;
}
