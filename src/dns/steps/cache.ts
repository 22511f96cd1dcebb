/**
 * The answer cache: encoded replies for configured names, per (name, qtype, EDNS variant). A hit
 * passes the summon gate and goes out as a copy with the query's ID, RD/CD and question case; a miss
 * goes down the path, and what the authority step encoded for it (`req.authored`) is kept.
 *
 * No invalidation is needed: a hit counts only while `summoner.lookup(name)` returns the same object
 * with the same address arrays and TTL, checked on every hit. The bytes of the name are compared,
 * so a hash collision is never a wrong answer; names with bytes >= 0x80 and non-IN classes bypass it.
 */
import { QClass, QType } from '../constants.js';
import { lowerNameWire, sameName, type ParsedQuery } from '../query.js';
import type { ServiceAnswer, Summoner } from '../types.js';
import type { FitStep } from './fit.js';
import { LinkedStep, type DnsRequest, type Reply } from './step.js';
import type { SummonStep } from './summon.js';

/** Encoded replies for one configured name; ID and question case get patched per query. */
interface CacheEntry {
  /** Lowercase wire name: collisions on the hash are told apart by these bytes. */
  wire: Uint8Array;
  name: string;
  answer: ServiceAnswer;
  ipv4: readonly string[];
  ipv6: readonly string[];
  ttl: number;
  /** A, AAAA, ANY x (no EDNS, EDNS, EDNS+DO): the hot slots, indexed without hashing. */
  addr: (Buffer | undefined)[];
  /** Other qtypes (NODATA answers), keyed qtype * 3 + EDNS variant. */
  other: Map<number, Buffer>;
  size: number;
  /** Next entry with the same hash. */
  next: CacheEntry | undefined;
}

function addrSlot(qtype: number, variant: number): number {
  return qtype === QType.A ? variant : qtype === QType.AAAA ? 3 + variant : qtype === QType.ANY ? 6 + variant : -1;
}

function ednsVariant(q: ParsedQuery): number {
  return q.hasEdns ? (q.ednsDo ? 2 : 1) : 0;
}

export interface CacheOptions {
  summoner: Summoner;
  summon: SummonStep;
  /** Our answers' way out (RRL gate, fit). */
  out: FitStep;
  /** Bound on cached encoded replies; reaching it empties the cache (it refills on demand). */
  entries: number;
}

export class CacheStep extends LinkedStep {
  private readonly summoner: Summoner;
  private readonly summon: SummonStep;
  private readonly out: FitStep;
  private readonly limit: number;
  private readonly byHash = new Map<number, CacheEntry>();
  private replies = 0;

  constructor(opts: CacheOptions) {
    super();
    this.summoner = opts.summoner;
    this.summon = opts.summon;
    this.out = opts.out;
    this.limit = opts.entries;
  }

  serve(req: DnsRequest): Reply {
    const q = req.q;
    if (!q.cacheable || q.qclass !== QClass.IN) return this.next.serve(req);
    let entry = this.byHash.get(q.hash);
    while (entry !== undefined && !sameName(req.msg, q, entry.wire)) entry = entry.next;
    if (entry !== undefined) {
      const answer = this.summoner.lookup(entry.name);
      if (answer === entry.answer && answer.ipv4 === entry.ipv4 && answer.ipv6 === entry.ipv6 && answer.ttl === entry.ttl) {
        const variant = ednsVariant(q);
        const slot = addrSlot(q.qtype, variant);
        const cached = slot >= 0 ? entry.addr[slot] : entry.other.get(q.qtype * 3 + variant);
        if (cached !== undefined) {
          req.knowName(entry.name);
          const wait = this.summon.serve(req, answer);
          return wait !== undefined ? wait : this.out.answer(req, cached);
        }
      } else {
        this.forget(q.hash, entry);
        entry = undefined;
      }
    }
    return this.miss(req, entry);
  }

  /** Drops every cached reply (e.g. after a configuration reload). */
  clear(): void {
    this.byHash.clear();
    this.replies = 0;
  }

  /** Cached replies now (tests, bounds). */
  size(): number {
    return this.replies;
  }

  /**
   * Down the path; what the authority step encodes on the way is kept, in `entry` (the name's
   * entry, still valid, when the miss is only for this type or EDNS variant). Apart from serve() so
   * the hit path stays small enough to inline.
   */
  private miss(req: DnsRequest, entry: CacheEntry | undefined): Reply {
    const reply = this.next.serve(req);
    if (req.authored !== undefined && req.authoredFrom !== undefined) this.remember(req, entry, req.authoredFrom, req.authored);
    return reply;
  }

  private remember(req: DnsRequest, entry: CacheEntry | undefined, answer: ServiceAnswer, reply: Buffer): void {
    const q = req.q;
    if (this.replies >= this.limit) {
      this.clear(); // bounded memory; refills on demand
      entry = undefined;
    }
    if (entry !== undefined && entry.answer !== answer) {
      this.forget(q.hash, entry);
      entry = undefined;
    }
    if (entry === undefined) {
      entry = {
        wire: lowerNameWire(req.msg, q),
        name: req.name(),
        answer,
        ipv4: answer.ipv4,
        ipv6: answer.ipv6,
        ttl: answer.ttl,
        addr: new Array<Buffer | undefined>(9).fill(undefined),
        other: new Map(),
        size: 0,
        next: this.byHash.get(q.hash),
      };
      this.byHash.set(q.hash, entry);
    }
    const variant = ednsVariant(q);
    const slot = addrSlot(q.qtype, variant);
    const copy = Buffer.from(reply);
    if (slot >= 0) {
      if (entry.addr[slot] === undefined) {
        entry.size++;
        this.replies++;
      }
      entry.addr[slot] = copy;
    } else {
      if (!entry.other.has(q.qtype * 3 + variant)) {
        entry.size++;
        this.replies++;
      }
      entry.other.set(q.qtype * 3 + variant, copy);
    }
  }

  private forget(hash: number, entry: CacheEntry): void {
    this.replies -= entry.size;
    let head = this.byHash.get(hash);
    if (head === entry) {
      if (entry.next === undefined) this.byHash.delete(hash);
      else this.byHash.set(hash, entry.next);
      return;
    }
    while (head !== undefined && head.next !== entry) head = head.next;
    if (head !== undefined) head.next = entry.next;
  }
}
