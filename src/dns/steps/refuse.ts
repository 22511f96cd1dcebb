/** The end of the path: a name that is neither ours nor forwarded is REFUSED (through RRL: it is our answer). */
import { Rcode } from '../constants.js';
import type { RateLimitStep } from './rate-limit.js';
import type { Replies } from './reply.js';
import type { DnsRequest, Reply, Step } from './step.js';

export class RefuseStep implements Step {
  constructor(
    /** Undefined: RRL is off. */
    private readonly rrl: RateLimitStep | undefined,
    private readonly replies: Replies,
  ) {}

  serve(req: DnsRequest): Reply {
    const limited = this.rrl?.limit(req, Rcode.REFUSED, 0);
    return limited !== undefined ? limited : this.replies.bare(req, Rcode.REFUSED);
  }
}
