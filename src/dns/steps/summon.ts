/**
 * The summon gate, passed by every A/AAAA/ANY answer for a configured name, cached or not: it asks
 * the service layer to make sure the service is up (`ensureUp`, which is also how that layer sees a
 * name in use). Up (or masked): the answer goes out now. Booting: the query waits for the boot and
 * is answered then; a failed or refused boot is SERVFAIL. Waiting queries are bounded, so a flood
 * during a long boot cannot grow memory without bound.
 */
import { performance } from 'node:perf_hooks';
import { errorCode, errorMessage } from '../../errors.js';
import type { Logger } from '../../observe/log.js';
import { QType, Rcode } from '../constants.js';
import type { DnsMetrics } from '../metrics.js';
import type { ServiceAnswer } from '../types.js';
import type { ZoneAnswers } from './answers.js';
import type { FitStep } from './fit.js';
import type { Replies } from './reply.js';
import type { DnsRequest, Reply } from './step.js';

export function isAddressType(qtype: number): boolean {
  return qtype === QType.A || qtype === QType.AAAA || qtype === QType.ANY;
}

export interface SummonDeps {
  answers: ZoneAnswers;
  /** Our answers' way out (RRL gate, fit). */
  out: FitStep;
  replies: Replies;
  metrics: DnsMetrics;
  logger: Logger;
  /** Queries waiting for a booting service; beyond this they get SERVFAIL at once. */
  maxPending: number;
}

export class SummonStep {
  private readonly answers: ZoneAnswers;
  private readonly out: FitStep;
  private readonly replies: Replies;
  private readonly metrics: DnsMetrics;
  private readonly logger: Logger;
  private readonly maxPending: number;
  private pending = 0;

  constructor(deps: SummonDeps) {
    this.answers = deps.answers;
    this.out = deps.out;
    this.replies = deps.replies;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.maxPending = deps.maxPending;
  }

  /**
   * undefined: answer now (not an address query, or the service is up). Otherwise the reply: the
   * answer once the boot resolves, or SERVFAIL. `req.name()` must be the configured name.
   */
  serve(req: DnsRequest, answer: ServiceAnswer): Reply | undefined {
    if (!isAddressType(req.q.qtype)) return undefined;
    const up = answer.ensureUp(req.source);
    return up === true ? undefined : this.later(req, answer, up);
  }

  private later(req: DnsRequest, answer: ServiceAnswer, up: Promise<void>): Reply {
    // The boot itself is the service layer's; only this query's wait is refused.
    up.catch(() => {});
    if (this.pending >= this.maxPending) {
      this.metrics.summonOverload.inc();
      return this.replies.bare(req, Rcode.SERVFAIL);
    }
    this.pending++;
    const t0 = performance.now();
    const late = req.detach();
    return up.then(
      () => {
        this.pending--;
        this.metrics.answeredSince('summon', t0);
        try {
          return this.out.answer(late, this.answers.service(late, answer));
        } catch (err) {
          this.logger.warn('dns handler failed', { error: errorMessage(err) });
          return this.replies.bare(late, Rcode.SERVFAIL);
        }
      },
      (err: unknown) => {
        this.pending--;
        this.metrics.summonFailures.inc();
        // A failed service refuses every query of its cool-down, and a refused boot is counted
        // (jitsu_summons_refused_total): a line per query would flood the log.
        const code = errorCode(err);
        const level = code === 'SERVICE_FAILED' || code === 'BOOT_REFUSED' ? 'debug' : 'warn';
        this.logger[level]('service did not come up; answering SERVFAIL', { service: answer.service, name: late.name(), error: errorMessage(err) });
        this.metrics.answeredSince('summon', t0);
        return this.replies.bare(late, Rcode.SERVFAIL);
      },
    );
  }
}
