/**
 * What the steps of the DNS path share (in the spirit of CoreDNS's plugin chain): the request they
 * pass along, what a step returns, and how steps are linked. A step either answers the query or
 * hands it to its `next`; `link()` sets the `next`s once, when the handler is built, so a query
 * costs no closure and no array: one reused `DnsRequest` travels down fixed, monomorphic calls.
 */
import { asciiLower, decodeName } from '../codec.js';
import { HEADER_SIZE } from '../constants.js';
import { ParsedQuery } from '../query.js';
import { copySource, type QuerySource } from '../source.js';
import type { ServiceAnswer, Transport } from '../types.js';

/** A reply to send now, `null` (send nothing), or one that comes later (summon, forward). */
export type Reply = Buffer | null | Promise<Buffer | null>;

/**
 * One query on its way down the path. The handler owns one and reuses it for every query, so it is
 * valid only during `handle()`, like the message and the source it points at; a step that answers
 * later keeps a `detach()`ed copy.
 */
export class DnsRequest {
  msg: Buffer = Buffer.alloc(0);
  transport: Transport = 'udp';
  /** The client; undefined for in-process callers (never limited, never refused). */
  source: QuerySource | undefined = undefined;
  /** Header, first question and OPT, filled by the parse step. */
  readonly q: ParsedQuery;
  /**
   * The authoritative answer the authority step encoded for this query (before RRL and fitting),
   * and the service answer it came from: what the cache step keeps. Undefined on every other path.
   */
  authored: Buffer | undefined = undefined;
  authoredFrom: ServiceAnswer | undefined = undefined;
  private lowerName: string | undefined = undefined;

  constructor(q: ParsedQuery = new ParsedQuery()) {
    this.q = q;
  }

  start(msg: Buffer, transport: Transport, source: QuerySource | undefined): this {
    this.msg = msg;
    this.transport = transport;
    this.source = source;
    this.authored = undefined;
    this.authoredFrom = undefined;
    this.lowerName = undefined;
    return this;
  }

  /** The question name, ASCII-lowercased, no trailing dot: decoded once, by the first step that needs it. */
  name(): string {
    if (this.lowerName === undefined) this.lowerName = asciiLower(decodeName(this.msg, HEADER_SIZE).name);
    return this.lowerName;
  }

  /** The cache step knows the name without decoding it. */
  knowName(name: string): void {
    this.lowerName = name;
  }

  /** A copy that outlives `handle()`: the server may reuse the message's and the source's memory. */
  detach(): DnsRequest {
    const copy = new DnsRequest(Object.assign(new ParsedQuery(), this.q));
    copy.msg = Buffer.from(this.msg);
    copy.transport = this.transport;
    copy.source = this.source === undefined ? undefined : copySource(this.source);
    copy.lowerName = this.lowerName;
    return copy;
  }
}

export interface Step {
  serve(req: DnsRequest): Reply;
}

const UNLINKED: Step = {
  serve(): never {
    throw new Error('DNS step used before link() gave it a next step');
  },
};

/** A step that may hand the query on to the one after it. */
export abstract class LinkedStep implements Step {
  next: Step = UNLINKED;
  abstract serve(req: DnsRequest): Reply;
}

/** Links the steps in the given order (each one's `next` is the one after it); returns the first. */
export function link(first: LinkedStep, ...rest: [...LinkedStep[], Step]): Step {
  let prev = first;
  for (let i = 0; i < rest.length; i++) {
    const step = rest[i]!;
    prev.next = step;
    if (i < rest.length - 1) {
      if (!(step instanceof LinkedStep)) throw new Error('only the last DNS step may have no next');
      prev = step;
    }
  }
  return first;
}
