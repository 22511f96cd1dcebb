/**
 * The way out of every answer: fit it to the client's datagram. Our own answers ask the RRL gate
 * first (rate-limit.ts; when RRL is on). Over UDP a reply larger than 512 octets (no EDNS) or
 * min(advertised, 1232) goes out as the question with TC=1, so the client asks again over TCP;
 * otherwise our own answers leave as a copy of their encoded template made personal (ID, RD/CD,
 * question case), and upstream replies as they came.
 */
import { CLASSIC_UDP_SIZE, EDNS_UDP_SIZE, Flag, HEADER_SIZE } from '../constants.js';
import type { DnsMetrics } from '../metrics.js';
import type { ParsedQuery } from '../query.js';
import { flagsOf, rcodeOf } from '../wire.js';
import type { RateLimitStep } from './rate-limit.js';
import type { Replies } from './reply.js';
import type { DnsRequest } from './step.js';

/** Largest UDP reply this client may receive. */
export function udpLimit(q: ParsedQuery): number {
  if (!q.hasEdns) return CLASSIC_UDP_SIZE;
  const size = q.ednsPayload < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : q.ednsPayload;
  return size > EDNS_UDP_SIZE ? EDNS_UDP_SIZE : size;
}

export class FitStep {
  constructor(
    /** Undefined: RRL is off. */
    private readonly rrl: RateLimitStep | undefined,
    private readonly replies: Replies,
    private readonly metrics: DnsMetrics,
  ) {}

  /** One of our answers (`template`: encoded for this name, type and EDNS variant; not modified); null: dropped by RRL. */
  answer(req: DnsRequest, template: Buffer): Buffer | null {
    if (this.rrl !== undefined) {
      const limited = this.rrl.limitAnswer(req, template);
      if (limited !== undefined) return limited;
    }
    if (req.transport === 'udp' && template.length > udpLimit(req.q)) return this.truncate(req, template, Flag.AA);
    // A copy with the query's ID, RD and CD bits and question name bytes (0x20 case comes back as
    // asked). Here, not in a helper: one call less on the hot path. TypedArray.set and a byte loop:
    // Buffer.copy costs more than the copy for a few dozen bytes.
    const msg = req.msg;
    const out = Buffer.allocUnsafe(template.length);
    out.set(template);
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    out[2] = (template[2]! & ~(Flag.RD >> 8)) | (msg[2]! & (Flag.RD >> 8));
    out[3] = (template[3]! & ~Flag.CD) | (msg[3]! & Flag.CD);
    for (let i = HEADER_SIZE, end = req.q.nameEnd; i < end; i++) out[i] = msg[i]!;
    this.metrics.query(req.transport, rcodeOf(template));
    return out;
  }

  /** An upstream reply to a forwarded query; `rcode`: its header rcode. */
  upstream(req: DnsRequest, reply: Buffer, rcode: number): Buffer {
    if (req.transport === 'udp' && reply.length > udpLimit(req.q)) return this.truncate(req, reply, Flag.AA | Flag.AD);
    this.metrics.query(req.transport, rcode);
    return reply;
  }

  /** The question alone with TC=1, `reply`'s rcode and those of its flags in `keep`. */
  private truncate(req: DnsRequest, reply: Buffer, keep: number): Buffer {
    this.metrics.truncated.inc();
    return this.replies.bare(req, rcodeOf(reply), flagsOf(reply) & keep, Flag.TC);
  }
}
