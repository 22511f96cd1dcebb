/**
 * RRL of our own answers (`../rrl.ts` decides): each UDP answer we make ourselves — cached,
 * authoritative, NXDOMAIN, REFUSED — spends a token of its client's prefix; over the rate it is
 * dropped, or slipped as the bare question with TC=1. Forwarded replies, TCP and in-process callers
 * are never limited. A gate: the fit step asks it before an answer leaves, the refuse step before
 * REFUSED does.
 */
import { Flag } from '../constants.js';
import { flagsOf, rcodeOf } from '../wire.js';
import type { DnsMetrics } from '../metrics.js';
import type { ResponseRateLimiter } from '../rrl.js';
import type { Replies } from './reply.js';
import type { DnsRequest } from './step.js';

export class RateLimitStep {
  constructor(
    private readonly rrl: ResponseRateLimiter,
    private readonly replies: Replies,
    private readonly metrics: DnsMetrics,
  ) {}

  /**
   * RRL for an answer with this rcode (AA as given): undefined = within the client's rate (or not
   * limited: TCP, an in-process caller); null = drop it; else the slipped reply (TC=1, question
   * only) to send instead.
   */
  limit(req: DnsRequest, rcode: number, aa: number): Buffer | null | undefined {
    const verdict = this.verdict(req);
    return verdict === undefined ? undefined : this.limited(req, verdict, rcode, aa);
  }

  /** limit() for one of our encoded answers: its rcode and AA are read only if it is over the rate. */
  limitAnswer(req: DnsRequest, template: Buffer): Buffer | null | undefined {
    const verdict = this.verdict(req);
    return verdict === undefined ? undefined : this.limited(req, verdict, rcodeOf(template), flagsOf(template) & Flag.AA);
  }

  /** undefined: within the rate, or not limited at all (TCP, an in-process caller). */
  private verdict(req: DnsRequest): 'drop' | 'slip' | undefined {
    const source = req.source;
    if (source === undefined || req.transport !== 'udp') return undefined;
    const verdict = this.rrl.check(source);
    return verdict === 'send' ? undefined : verdict;
  }

  /** Over the rate: apart from limit(), so the common case stays small enough to inline. */
  private limited(req: DnsRequest, verdict: 'drop' | 'slip', rcode: number, aa: number): Buffer | null {
    this.metrics.rrlLimited.inc();
    if (verdict === 'drop') return null;
    this.metrics.rrlSlipped.inc();
    return this.replies.bare(req, rcode, aa, Flag.TC);
  }
}
