/**
 * A fault in a later step or in the service layer (a bug, an answer too large for any transport)
 * costs the query one SERVFAIL, never the listener.
 */
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../observe/log.js';
import { Rcode } from '../constants.js';
import type { Replies } from './reply.js';
import { LinkedStep, type DnsRequest, type Reply } from './step.js';

export class GuardStep extends LinkedStep {
  constructor(
    private readonly replies: Replies,
    private readonly logger: Logger,
  ) {
    super();
  }

  serve(req: DnsRequest): Reply {
    try {
      return this.next.serve(req);
    } catch (err) {
      return this.fault(req, err);
    }
  }

  private fault(req: DnsRequest, err: unknown): Buffer {
    this.logger.warn('dns handler failed', { error: errorMessage(err) });
    return this.replies.bare(req, Rcode.SERVFAIL);
  }
}
