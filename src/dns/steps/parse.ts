/**
 * The first step: the header rules, then the hot-path parse (header, first question, OPT) into the
 * request. Received responses (QR=1) and unparseable messages are dropped and counted; a non-QUERY
 * opcode is NOTIMP and qdcount != 1 FORMERR (header only: the question cannot be trusted); two OPT
 * records are FORMERR and an EDNS version > 0 BADVERS (with the question and our OPT).
 */
import { Flag, HEADER_SIZE, Opcode, Rcode } from '../constants.js';
import type { DnsMetrics } from '../metrics.js';
import { parseQuery } from '../query.js';
import { flagsOf, OPCODE_MASK, opcodeOf } from '../wire.js';
import type { Replies } from './reply.js';
import { LinkedStep, type DnsRequest, type Reply } from './step.js';

export class ParseStep extends LinkedStep {
  constructor(
    private readonly replies: Replies,
    private readonly metrics: DnsMetrics,
  ) {
    super();
  }

  serve(req: DnsRequest): Reply {
    const msg = req.msg;
    // One test for the common case (a query: QR=0, opcode QUERY = 0, one question); the rules'
    // replies are in reject() and badEdns(), so this stays small enough to inline.
    if (msg.length < HEADER_SIZE || (flagsOf(msg) & (Flag.QR | OPCODE_MASK)) !== 0 || msg[4] !== 0 || msg[5] !== 1) return this.reject(req);
    const q = req.q;
    try {
      parseQuery(msg, q);
    } catch {
      return this.malformed(req);
    }
    if (q.ednsDuplicate || (q.hasEdns && q.ednsVersion !== 0)) return this.badEdns(req);
    return this.next.serve(req);
  }

  private malformed(req: DnsRequest): null {
    this.metrics.malformed[req.transport].inc();
    return null;
  }

  /** Two OPT records: FORMERR; an EDNS version we do not speak: BADVERS. */
  private badEdns(req: DnsRequest): Buffer {
    return this.replies.bare(req, req.q.ednsDuplicate ? Rcode.FORMERR : Rcode.BADVERS);
  }

  /** Short, a response, another opcode, or not one question. */
  private reject(req: DnsRequest): Reply {
    const msg = req.msg;
    if (msg.length < HEADER_SIZE) return this.malformed(req);
    const flags = flagsOf(msg);
    if ((flags & Flag.QR) !== 0) {
      this.metrics.responsesDropped.inc();
      return null;
    }
    if (opcodeOf(flags) !== Opcode.QUERY) return this.replies.headerOnly(req, flags, Rcode.NOTIMP);
    return this.replies.headerOnly(req, flags, Rcode.FORMERR);
  }
}
