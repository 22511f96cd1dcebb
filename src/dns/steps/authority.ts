/**
 * Configured names (class IN or ANY): we are their authority. A/AAAA/ANY pass the summon gate
 * first; then the answer is the name's addresses, or NODATA with the zone's SOA (answers.ts). What
 * it encodes is left on the request for the cache step. Other names go on (forward, NXDOMAIN, refuse).
 */
import { QClass } from '../constants.js';
import type { Summoner } from '../types.js';
import type { ZoneAnswers } from './answers.js';
import type { FitStep } from './fit.js';
import { LinkedStep, type DnsRequest, type Reply } from './step.js';
import type { SummonStep } from './summon.js';

export interface AuthorityOptions {
  summoner: Summoner;
  summon: SummonStep;
  answers: ZoneAnswers;
  /** Our answers' way out (RRL gate, fit). */
  out: FitStep;
}

export class AuthorityStep extends LinkedStep {
  private readonly summoner: Summoner;
  private readonly summon: SummonStep;
  private readonly answers: ZoneAnswers;
  private readonly out: FitStep;

  constructor(opts: AuthorityOptions) {
    super();
    this.summoner = opts.summoner;
    this.summon = opts.summon;
    this.answers = opts.answers;
    this.out = opts.out;
  }

  serve(req: DnsRequest): Reply {
    const qclass = req.q.qclass;
    if (qclass !== QClass.IN && qclass !== QClass.ANY) return this.next.serve(req);
    const answer = this.summoner.lookup(req.name());
    if (answer === undefined) return this.next.serve(req);
    const wait = this.summon.serve(req, answer);
    if (wait !== undefined) return wait;
    const reply = this.answers.service(req, answer);
    req.authored = reply;
    req.authoredFrom = answer;
    return this.out.answer(req, reply);
  }
}
