import type { SynjitsuLimits } from './limits.js';

export type RefuseReason = 'max-flows' | 'max-flows-per-service' | 'max-parked' | 'max-parked-per-service';

/**
 * The accounting half of the flow table: how many connections and bytes are held, against the
 * limits. The per-service maps live with each service; every admission goes through here so the
 * totals cannot drift.
 */
export class FlowBudget {
  flows = 0;
  parked = 0;
  bufferedBytes = 0;

  constructor(readonly limits: SynjitsuLimits) {}

  /** undefined when a new handshaken connection may be held, else why not. */
  admitFlow(serviceFlows: number): RefuseReason | undefined {
    if (this.flows >= this.limits.maxFlows) return 'max-flows';
    if (serviceFlows >= this.limits.maxFlowsPerService) return 'max-flows-per-service';
    this.flows++;
    return undefined;
  }

  releaseFlow(): void {
    this.flows--;
  }

  admitParked(serviceParked: number): RefuseReason | undefined {
    if (this.parked >= this.limits.maxParked) return 'max-parked';
    if (serviceParked >= this.limits.maxParkedPerService) return 'max-parked-per-service';
    this.parked++;
    return undefined;
  }

  releaseParked(n = 1): void {
    this.parked -= n;
  }

  /** Bytes a connection holding `flowBuffered` may still buffer (what we advertise as window). */
  space(flowBuffered: number): number {
    return Math.max(0, Math.min(this.limits.maxFlowBuffer - flowBuffered, this.limits.maxTotalBuffer - this.bufferedBytes));
  }

  /** Takes up to `want` bytes for a connection; returns how many were granted. */
  take(flowBuffered: number, want: number): number {
    const n = Math.min(want, this.space(flowBuffered));
    this.bufferedBytes += n;
    return n;
  }

  give(n: number): void {
    this.bufferedBytes -= n;
  }
}

/** Modular sequence-number arithmetic (RFC 793 / 1982). */
export const seq = {
  add: (a: number, n: number): number => (a + n) >>> 0,
  diff: (a: number, b: number): number => (a - b) | 0,
  lt: (a: number, b: number): boolean => ((a - b) | 0) < 0,
  le: (a: number, b: number): boolean => ((a - b) | 0) <= 0,
};

/** Key for a client endpoint within one service: exact in a double (48 bits). */
export function endpointKey(ip: number, port: number): number {
  return ip * 65536 + port;
}
