/**
 * Replies without records (errors, refusals, truncation), built with the shared wire layout
 * (wire.ts) and counted: the one way every step answers with just the header and question.
 */
import type { DnsMetrics } from '../metrics.js';
import { headerOnlyReply, questionOnlyReply, replyFlags } from '../wire.js';
import type { DnsRequest } from './step.js';

export class Replies {
  /** `ra`: Flag.RA when we forward (recursion available), else 0; set on every reply we make. */
  constructor(
    private readonly metrics: DnsMetrics,
    readonly ra: number,
  ) {}

  /**
   * Header + the query's question (+ our OPT if the query had one), no records. `keepFlags`: flags
   * carried over from the answer this replaces (AA, AD); `extraFlags`: e.g. TC.
   */
  bare(req: DnsRequest, rcode: number, keepFlags = 0, extraFlags = 0): Buffer {
    const q = req.q;
    const flags = replyFlags(q.flags, this.ra | keepFlags | extraFlags, rcode);
    const out = questionOnlyReply(req.msg, q.questionEnd, q.id, flags, rcode, q.hasEdns, q.ednsDo);
    this.metrics.query(req.transport, rcode);
    return out;
  }

  /** NOTIMP/FORMERR when the question cannot be trusted (not parsed yet): header only, no sections. */
  headerOnly(req: DnsRequest, flags: number, rcode: number): Buffer {
    const out = headerOnlyReply(req.msg, replyFlags(flags, this.ra, rcode));
    this.metrics.query(req.transport, rcode);
    return out;
  }
}
