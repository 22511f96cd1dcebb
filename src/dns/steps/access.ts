/**
 * The forwarding access list (--allow-forward): only clients inside it have names we do not own
 * forwarded, so we are no open resolver. Others are counted (jitsu_dns_forward_refused_total) and
 * answered as if forwarding were off. In-process callers (no source) are always allowed.
 */
import type { DnsMetrics } from '../metrics.js';
import type { AddressSet } from '../source.js';
import type { DnsRequest } from './step.js';

export class ForwardAccess {
  /** `allow`: undefined lets every client through (the daemon always passes its --allow-forward). */
  constructor(
    private readonly allow: AddressSet | undefined,
    private readonly metrics: DnsMetrics,
  ) {}

  /** Whether this query may be forwarded; a refusal is counted. Asked only when forwarding is on. */
  allows(req: DnsRequest): boolean {
    const source = req.source;
    if (source === undefined || this.allow === undefined || this.allow.contains(source)) return true;
    this.metrics.forwardRefused.inc();
    return false;
  }
}
