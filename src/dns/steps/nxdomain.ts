/**
 * Names without a service inside one of our zones (not forwarded): NXDOMAIN with the zone's SOA;
 * the apex itself gets its SOA or NODATA (answers.ts). Names outside our zones, and classes other
 * than IN and ANY, go on to be refused.
 */
import { QClass } from '../constants.js';
import type { Summoner } from '../types.js';
import type { ZoneAnswers } from './answers.js';
import type { FitStep } from './fit.js';
import { LinkedStep, type DnsRequest, type Reply } from './step.js';

export class NxdomainStep extends LinkedStep {
  constructor(
    private readonly summoner: Summoner,
    private readonly answers: ZoneAnswers,
    /** Our answers' way out (RRL gate, fit). */
    private readonly out: FitStep,
  ) {
    super();
  }

  serve(req: DnsRequest): Reply {
    const qclass = req.q.qclass;
    const zone = qclass === QClass.IN || qclass === QClass.ANY ? this.summoner.zoneOf(req.name()) : undefined;
    if (zone === undefined) return this.next.serve(req);
    return this.out.answer(req, this.answers.negative(req, zone));
  }
}
