/**
 * Names we do not own go upstream (forwarder.ts) when forwarding is on and the client passes the
 * access list; the reply is fitted to the client's datagram, a failed upstream is SERVFAIL. Anything
 * else goes on (NXDOMAIN inside our zones, else REFUSED).
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../observe/log.js';
import { Rcode } from '../constants.js';
import type { Forwarder } from '../forwarder.js';
import type { DnsMetrics } from '../metrics.js';
import { rcodeOf } from '../wire.js';
import type { ForwardAccess } from './access.js';
import type { FitStep } from './fit.js';
import type { Replies } from './reply.js';
import { LinkedStep, type DnsRequest, type Reply } from './step.js';

export interface ForwardOptions {
  /** Undefined: forwarding is off. */
  forwarder: Forwarder | undefined;
  access: ForwardAccess;
  fit: FitStep;
  replies: Replies;
  metrics: DnsMetrics;
  logger: Logger;
}

export class ForwardStep extends LinkedStep {
  private readonly forwarder: Forwarder | undefined;
  private readonly access: ForwardAccess;
  private readonly fit: FitStep;
  private readonly replies: Replies;
  private readonly metrics: DnsMetrics;
  private readonly logger: Logger;

  constructor(opts: ForwardOptions) {
    super();
    this.forwarder = opts.forwarder;
    this.access = opts.access;
    this.fit = opts.fit;
    this.replies = opts.replies;
    this.metrics = opts.metrics;
    this.logger = opts.logger;
  }

  serve(req: DnsRequest): Reply {
    if (this.forwarder !== undefined && this.access.allows(req)) return this.forward(this.forwarder, req.detach());
    return this.next.serve(req);
  }

  private forward(forwarder: Forwarder, req: DnsRequest): Promise<Buffer | null> {
    const t0 = performance.now();
    return forwarder.forward(req.msg, req.q.questionEnd).then(
      (reply) => {
        this.metrics.answeredSince('forward', t0);
        return this.fit.upstream(req, reply, rcodeOf(reply));
      },
      (err: unknown) => {
        this.logger.debug('forwarding failed; answering SERVFAIL', { error: errorMessage(err) });
        this.metrics.answeredSince('forward', t0);
        return this.replies.bare(req, Rcode.SERVFAIL);
      },
    );
  }
}
