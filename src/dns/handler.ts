/**
 * The query handler chain: summon -> forward -> refuse (DESIGN.md section 3).
 *
 * - Configured names get authoritative answers (AA): A/AAAA as configured, NODATA + SOA for
 *   other types. A/AAAA/ANY first call `ensureUp()`; a pending boot answers later, a failed boot
 *   answers SERVFAIL.
 * - Other names: forwarded when forwarding is on and the client is in `allowForward`. Otherwise
 *   (forwarding off, or a client outside it: we are no open resolver) names inside one of our zones
 *   get NXDOMAIN + SOA (the apex: NODATA + SOA, or its SOA), the rest REFUSED.
 * - Our own UDP answers go through RRL when `rrl` is given (rrl.ts): over the rate they are dropped
 *   or slipped (TC=1). Forwarded replies and TCP are not limited.
 * - Non-QUERY opcodes: NOTIMP. qdcount != 1 or duplicate OPT: FORMERR. EDNS version > 0:
 *   BADVERS. Received responses (QR=1) and malformed messages are dropped and counted.
 *
 * Hot path: replies for ready configured names are cached encoded per (name, qtype, EDNS
 * variant); a hit copies the cached bytes and patches ID, RD/CD and the question's case.
 * Validity is re-checked on every hit by `summoner.lookup(name)` returning the same object
 * with the same address arrays and TTL, so the service layer never has to invalidate.
 */
import { performance } from 'node:perf_hooks';
import { errorCode, errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import { asciiLower, decodeName, encodeMessage, type DnsMessage, type ResourceRecord } from './codec.js';
import {
  CLASSIC_UDP_SIZE,
  EDNS_DO,
  EDNS_UDP_SIZE,
  Flag,
  HEADER_SIZE,
  Opcode,
  QClass,
  QType,
  Rcode,
} from './constants.js';
import type { Forwarder } from './forwarder.js';
import { DnsMetrics, type AnswerPath } from './metrics.js';
import { lowerNameWire, ParsedQuery, parseQuery, sameName } from './query.js';
import type { ResponseRateLimiter } from './rrl.js';
import { copySource, type AddressSet, type QuerySource } from './source.js';
import type { DnsHandler, ServiceAnswer, Summoner, Transport } from './types.js';

export interface HandlerOptions {
  summoner: Summoner;
  /** Undefined disables forwarding. */
  forwarder?: Forwarder | undefined;
  metrics: MetricsRegistry;
  logger: Logger;
  /** SOA serial; default: now, in seconds (the daemon's start time). */
  serial?: number;
  /** TTL of SOA records for names without a service (the daemon's `-t`). Default 60. */
  ttl?: number;
  /** Bound on cached encoded answers. Default 4096. */
  cacheEntries?: number;
  /**
   * Queries waiting for a booting service; beyond this they get SERVFAIL at once, so a query
   * flood during a long boot cannot grow memory without bound. Default 10000.
   */
  maxPendingSummons?: number;
  /**
   * Clients whose queries for names we do not own may be forwarded; others are answered as if
   * forwarding were off. Undefined: every client (the daemon always passes its --allow-forward).
   */
  allowForward?: AddressSet | undefined;
  /** Rate limit for our own UDP answers; undefined = off. */
  rrl?: ResponseRateLimiter | undefined;
}

export interface QueryHandler extends DnsHandler {
  /** Drops every cached answer (e.g. after a configuration reload). */
  clearCache(): void;
}

const OPT_RR_SIZE = 11;
const SOA_REFRESH = 3600;
const SOA_RETRY = 600;
const SOA_EXPIRE = 86400;
/** Sample the latency of 1 in 64 cached answers: timing every one costs more than the answer. */
const SAMPLE_MASK = 63;

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

function cachedReply(entry: CacheEntry, qtype: number, variant: number): Buffer | undefined {
  const slot = addrSlot(qtype, variant);
  return slot >= 0 ? entry.addr[slot] : entry.other.get(qtype * 3 + variant);
}

function isAddressType(qtype: number): boolean {
  return qtype === QType.A || qtype === QType.AAAA || qtype === QType.ANY;
}

function ednsVariant(q: ParsedQuery): number {
  return q.hasEdns ? (q.ednsDo ? 2 : 1) : 0;
}

/** Largest UDP reply this client may receive. */
function udpLimit(q: ParsedQuery): number {
  if (!q.hasEdns) return CLASSIC_UDP_SIZE;
  const size = q.ednsPayload < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : q.ednsPayload;
  return size > EDNS_UDP_SIZE ? EDNS_UDP_SIZE : size;
}

function snapshot(q: ParsedQuery): ParsedQuery {
  return Object.assign(new ParsedQuery(), q);
}

class Handler implements QueryHandler {
  private readonly summoner: Summoner;
  private readonly forwarder: Forwarder | undefined;
  private readonly metrics: DnsMetrics;
  private readonly logger: Logger;
  private readonly serial: number;
  private readonly ttl: number;
  private readonly cacheLimit: number;
  private readonly cache = new Map<number, CacheEntry>();
  private cachedReplies = 0;
  private readonly q = new ParsedQuery();
  private tick = 0;
  private readonly ra: number;
  private readonly maxPendingSummons: number;
  private pendingSummons = 0;
  private readonly allowForward: AddressSet | undefined;
  private readonly rrl: ResponseRateLimiter | undefined;

  constructor(opts: HandlerOptions) {
    this.summoner = opts.summoner;
    this.forwarder = opts.forwarder;
    this.metrics = new DnsMetrics(opts.metrics);
    this.logger = opts.logger;
    this.serial = (opts.serial ?? Math.floor(Date.now() / 1000)) >>> 0;
    this.ttl = opts.ttl ?? 60;
    this.cacheLimit = opts.cacheEntries ?? 4096;
    this.ra = this.forwarder ? Flag.RA : 0;
    this.maxPendingSummons = opts.maxPendingSummons ?? 10_000;
    this.allowForward = opts.allowForward;
    this.rrl = opts.rrl;
  }

  clearCache(): void {
    this.cache.clear();
    this.cachedReplies = 0;
  }

  handle(msg: Buffer, transport: Transport, source?: QuerySource): Buffer | null | Promise<Buffer | null> {
    if ((++this.tick & SAMPLE_MASK) !== 0) return this.dispatch(msg, transport, source);
    const t0 = performance.now();
    const out = this.dispatch(msg, transport, source);
    if (out !== null && !(out instanceof Promise)) this.metrics.latencyByPath.sync.observe((performance.now() - t0) / 1000);
    return out;
  }

  private dispatch(msg: Buffer, transport: Transport, source: QuerySource | undefined): Buffer | null | Promise<Buffer | null> {
    if (msg.length < HEADER_SIZE) {
      this.metrics.malformed[transport].inc();
      return null;
    }
    if ((msg[2]! & 0x80) !== 0) {
      this.metrics.responsesDropped.inc();
      return null;
    }
    const opcode = (msg[2]! >> 3) & 0xf;
    const qdcount = (msg[4]! << 8) | msg[5]!;
    if (opcode !== Opcode.QUERY) return this.headerOnly(msg, transport, Rcode.NOTIMP);
    if (qdcount !== 1) return this.headerOnly(msg, transport, Rcode.FORMERR);
    const q = this.q;
    try {
      parseQuery(msg, q);
    } catch {
      this.metrics.malformed[transport].inc();
      return null;
    }
    if (q.ednsDuplicate) return this.minimal(msg, q, transport, Rcode.FORMERR, 0);
    if (q.hasEdns && q.ednsVersion !== 0) return this.minimal(msg, q, transport, Rcode.BADVERS, 0);

    try {
      if (q.cacheable && q.qclass === QClass.IN) {
        let entry = this.cache.get(q.hash);
        while (entry !== undefined && !sameName(msg, q, entry.wire)) entry = entry.next;
        if (entry !== undefined) {
          const answer = this.summoner.lookup(entry.name);
          if (answer === entry.answer && answer.ipv4 === entry.ipv4 && answer.ipv6 === entry.ipv6 && answer.ttl === entry.ttl) {
            const cached = cachedReply(entry, q.qtype, ednsVariant(q));
            if (cached !== undefined) {
              if (isAddressType(q.qtype)) {
                const up = answer.ensureUp(source);
                if (up !== true) return this.summonLater(msg, snapshot(q), transport, source, entry.name, answer, up);
              }
              return this.emit(cached, msg, q, transport, source);
            }
          } else this.forget(q.hash, entry);
        }
      }
      return this.slow(msg, q, transport, source);
    } catch (err) {
      // A bug here or in the service layer must cost one SERVFAIL, not the listener.
      this.logger.warn('dns handler failed', { error: errorMessage(err) });
      return this.minimal(msg, q, transport, Rcode.SERVFAIL, 0);
    }
  }

  /** Everything not served from the cache. `q` is only valid synchronously. */
  private slow(msg: Buffer, q: ParsedQuery, transport: Transport, source: QuerySource | undefined): Buffer | null | Promise<Buffer | null> {
    const name = asciiLower(decodeName(msg, HEADER_SIZE).name);
    const inClass = q.qclass === QClass.IN || q.qclass === QClass.ANY;
    if (inClass) {
      const answer = this.summoner.lookup(name);
      if (answer !== undefined) {
        if (isAddressType(q.qtype)) {
          const up = answer.ensureUp(source);
          if (up !== true) return this.summonLater(msg, snapshot(q), transport, source, name, answer, up);
        }
        const reply = this.authoritative(msg, q, name, answer);
        if (q.cacheable && q.qclass === QClass.IN) this.remember(msg, q, name, answer, reply);
        return this.emit(reply, msg, q, transport, source);
      }
    }
    if (this.forwarder) {
      if (source === undefined || this.allowForward === undefined || this.allowForward.contains(source)) return this.forward(msg, snapshot(q), transport);
      this.metrics.forwardRefused.inc();
    }
    const zone = inClass ? this.summoner.zoneOf(name) : undefined;
    if (zone === undefined) {
      const limited = this.rateLimit(msg, q, transport, source, Rcode.REFUSED, 0);
      return limited !== undefined ? limited : this.minimal(msg, q, transport, Rcode.REFUSED, 0);
    }
    const apex = name === zone;
    const soa = this.soa(zone, this.ttl);
    const reply = this.encode(msg, q, apex ? Rcode.NOERROR : Rcode.NXDOMAIN, {
      answers: apex && (q.qtype === QType.SOA || q.qtype === QType.ANY) ? [soa] : [],
      authorities: apex && (q.qtype === QType.SOA || q.qtype === QType.ANY) ? [] : [soa],
    });
    return this.emit(reply, msg, q, transport, source);
  }

  private summonLater(
    msg: Buffer,
    q: ParsedQuery,
    transport: Transport,
    source: QuerySource | undefined,
    name: string,
    answer: ServiceAnswer,
    up: Promise<void>,
  ): Buffer | Promise<Buffer | null> {
    // The boot itself is the service layer's; only this query's wait is refused.
    up.catch(() => {});
    if (this.pendingSummons >= this.maxPendingSummons) {
      this.metrics.summonOverload.inc();
      return this.minimal(msg, q, transport, Rcode.SERVFAIL, 0);
    }
    this.pendingSummons++;
    const t0 = performance.now();
    // The server may reuse msg's (and source's) memory once handle() returns (batched UDP): keep copies.
    msg = Buffer.from(msg);
    const client = source === undefined ? undefined : copySource(source);
    return up.then(
      () => {
        this.pendingSummons--;
        this.observe('summon', t0);
        try {
          return this.emit(this.authoritative(msg, q, name, answer), msg, q, transport, client);
        } catch (err) {
          this.logger.warn('dns handler failed', { error: errorMessage(err) });
          return this.minimal(msg, q, transport, Rcode.SERVFAIL, 0);
        }
      },
      (err: unknown) => {
        this.pendingSummons--;
        this.metrics.summonFailures.inc();
        // A failed service refuses every query of its cool-down, and a refused boot is counted
        // (jitsu_summons_refused_total): a line per query would flood the log.
        const code = errorCode(err);
        const level = code === 'SERVICE_FAILED' || code === 'BOOT_REFUSED' ? 'debug' : 'warn';
        this.logger[level]('service did not come up; answering SERVFAIL', {
          service: answer.service,
          name,
          error: errorMessage(err),
        });
        this.observe('summon', t0);
        return this.minimal(msg, q, transport, Rcode.SERVFAIL, 0);
      },
    );
  }

  private forward(query: Buffer, q: ParsedQuery, transport: Transport): Promise<Buffer | null> {
    const t0 = performance.now();
    // The server may reuse the query's memory once handle() returns (batched UDP): keep a copy.
    const msg = Buffer.from(query);
    return this.forwarder!.forward(msg, q.questionEnd).then(
      (reply) => {
        this.observe('forward', t0);
        return this.fit(reply, msg, q, transport, (reply[3]! & 0xf) | 0);
      },
      (err: unknown) => {
        this.logger.debug('forwarding failed; answering SERVFAIL', { error: errorMessage(err) });
        this.observe('forward', t0);
        return this.minimal(msg, q, transport, Rcode.SERVFAIL, 0);
      },
    );
  }

  private observe(path: AnswerPath, t0: number): void {
    this.metrics.latencyByPath[path].observe((performance.now() - t0) / 1000);
  }

  // -------------------------------------------------------------------------------------------
  // Building answers

  private soa(zone: string, ttl: number): ResourceRecord {
    const suffix = zone === '' ? '' : '.' + zone;
    return {
      name: zone,
      type: QType.SOA,
      class: QClass.IN,
      ttl,
      data: {
        kind: 'SOA',
        mname: 'ns' + suffix,
        rname: 'hostmaster' + suffix,
        serial: this.serial,
        refresh: SOA_REFRESH,
        retry: SOA_RETRY,
        expire: SOA_EXPIRE,
        minimum: ttl,
      },
    };
  }

  private authoritative(msg: Buffer, q: ParsedQuery, name: string, answer: ServiceAnswer): Buffer {
    const answers: ResourceRecord[] = [];
    const owner = decodeName(msg, HEADER_SIZE).name;
    if (q.qtype === QType.A || q.qtype === QType.ANY)
      for (const address of answer.ipv4) answers.push({ name: owner, type: QType.A, class: QClass.IN, ttl: answer.ttl, data: { kind: 'A', address } });
    if (q.qtype === QType.AAAA || q.qtype === QType.ANY)
      for (const address of answer.ipv6)
        answers.push({ name: owner, type: QType.AAAA, class: QClass.IN, ttl: answer.ttl, data: { kind: 'AAAA', address } });
    const authorities: ResourceRecord[] = [];
    if (answers.length === 0) {
      const zone = this.summoner.zoneOf(name) ?? zoneOf(name);
      authorities.push(this.soa(zone, answer.ttl));
    }
    return this.encode(msg, q, Rcode.NOERROR, { answers, authorities });
  }

  /** A full authoritative reply (AA) to `msg`, ID and flags taken from the query. */
  private encode(
    msg: Buffer,
    q: ParsedQuery,
    rcode: number,
    sections: { answers: ResourceRecord[]; authorities: ResourceRecord[] },
  ): Buffer {
    const m: DnsMessage = {
      id: q.id,
      qr: true,
      opcode: Opcode.QUERY,
      aa: true,
      tc: false,
      rd: (q.flags & Flag.RD) !== 0,
      ra: this.ra !== 0,
      ad: false,
      cd: (q.flags & Flag.CD) !== 0,
      rcode,
      questions: [{ name: decodeName(msg, HEADER_SIZE).name, type: q.qtype, class: q.qclass }],
      answers: sections.answers,
      authorities: sections.authorities,
      additionals: [],
    };
    if (q.hasEdns) m.edns = { udpPayloadSize: EDNS_UDP_SIZE, version: 0, dnssecOk: q.ednsDo, options: [] };
    return encodeMessage(m);
  }

  private remember(msg: Buffer, q: ParsedQuery, name: string, answer: ServiceAnswer, reply: Buffer): void {
    if (this.cachedReplies >= this.cacheLimit) this.clearCache(); // bounded memory; refills on demand
    let entry = this.cache.get(q.hash);
    while (entry !== undefined && !sameName(msg, q, entry.wire)) entry = entry.next;
    if (entry !== undefined && entry.answer !== answer) {
      this.forget(q.hash, entry);
      entry = undefined;
    }
    if (entry === undefined) {
      entry = {
        wire: lowerNameWire(msg, q),
        name,
        answer,
        ipv4: answer.ipv4,
        ipv6: answer.ipv6,
        ttl: answer.ttl,
        addr: new Array<Buffer | undefined>(9).fill(undefined),
        other: new Map(),
        size: 0,
        next: this.cache.get(q.hash),
      };
      this.cache.set(q.hash, entry);
    }
    const variant = ednsVariant(q);
    const slot = addrSlot(q.qtype, variant);
    const copy = Buffer.from(reply);
    if (slot >= 0) {
      if (entry.addr[slot] === undefined) {
        entry.size++;
        this.cachedReplies++;
      }
      entry.addr[slot] = copy;
    } else {
      if (!entry.other.has(q.qtype * 3 + variant)) {
        entry.size++;
        this.cachedReplies++;
      }
      entry.other.set(q.qtype * 3 + variant, copy);
    }
  }

  private forget(hash: number, entry: CacheEntry): void {
    this.cachedReplies -= entry.size;
    let head = this.cache.get(hash);
    if (head === entry) {
      if (entry.next === undefined) this.cache.delete(hash);
      else this.cache.set(hash, entry.next);
      return;
    }
    while (head !== undefined && head.next !== entry) head = head.next;
    if (head !== undefined) head.next = entry.next;
  }

  /**
   * Sends a (possibly cached) reply to this query: a copy with the query's ID, RD/CD bits and
   * question bytes (so 0x20 case comes back as asked), truncated if it does not fit a datagram.
   * Over the client's answer rate (RRL) it is dropped (null) or slipped (truncated).
   */
  private emit(template: Buffer, msg: Buffer, q: ParsedQuery, transport: Transport, source: QuerySource | undefined): Buffer | null {
    if (this.rrl !== undefined && source !== undefined) {
      const limited = this.rateLimit(msg, q, transport, source, template[3]! & 0xf, ((template[2]! << 8) | template[3]!) & Flag.AA);
      if (limited !== undefined) return limited;
    }
    if (transport === 'udp' && template.length > udpLimit(q)) {
      this.metrics.truncated.inc();
      return this.minimal(msg, q, transport, template[3]! & 0xf, ((template[2]! << 8) | template[3]!) & Flag.AA, Flag.TC);
    }
    // TypedArray.set and a byte loop: Buffer.copy costs more than the copy for a few dozen bytes.
    const out = Buffer.allocUnsafe(template.length);
    out.set(template);
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    out[2] = (template[2]! & ~(Flag.RD >> 8)) | (msg[2]! & (Flag.RD >> 8));
    out[3] = (template[3]! & ~Flag.CD) | (msg[3]! & Flag.CD);
    for (let i = HEADER_SIZE; i < q.nameEnd; i++) out[i] = msg[i]!;
    this.metrics.query(transport, template[3]! & 0xf);
    return out;
  }

  /**
   * RRL for one of our own answers (rcode, AA as given): undefined = within the client's rate (or
   * not limited: TCP, no limiter, an in-process caller); null = drop it; else the slipped reply
   * (TC=1, question only) to send instead.
   */
  private rateLimit(msg: Buffer, q: ParsedQuery, transport: Transport, source: QuerySource | undefined, rcode: number, aa: number): Buffer | null | undefined {
    if (this.rrl === undefined || source === undefined || transport !== 'udp') return undefined;
    const verdict = this.rrl.check(source);
    if (verdict === 'send') return undefined;
    this.metrics.rrlLimited.inc();
    if (verdict === 'drop') return null;
    this.metrics.rrlSlipped.inc();
    return this.minimal(msg, q, transport, rcode, aa, Flag.TC);
  }

  /** Passes an upstream reply on, truncated if it does not fit the client's datagram size. */
  private fit(reply: Buffer, msg: Buffer, q: ParsedQuery, transport: Transport, rcode: number): Buffer {
    if (transport === 'udp' && reply.length > udpLimit(q)) {
      this.metrics.truncated.inc();
      return this.minimal(msg, q, transport, rcode, ((reply[2]! << 8) | reply[3]!) & (Flag.AA | Flag.AD), Flag.TC);
    }
    this.metrics.query(transport, rcode);
    return reply;
  }

  /** Header + the query's question (+ OPT if the query had one); no records. */
  private minimal(msg: Buffer, q: ParsedQuery, transport: Transport, rcode: number, keepFlags: number, extraFlags = 0): Buffer {
    const opt = q.hasEdns ? OPT_RR_SIZE : 0;
    const out = Buffer.allocUnsafe(q.questionEnd + opt);
    const flags =
      Flag.QR | (q.flags & (0xf << 11)) | (q.flags & (Flag.RD | Flag.CD)) | this.ra | keepFlags | extraFlags | (rcode & 0xf);
    out.writeUInt16BE(q.id, 0);
    out.writeUInt16BE(flags, 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt32BE(0, 6);
    out.writeUInt16BE(opt ? 1 : 0, 10);
    msg.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
    if (opt) writeOpt(out, q.questionEnd, rcode >> 4, q.ednsDo);
    this.metrics.query(transport, rcode);
    return out;
  }

  /** NOTIMP/FORMERR when the question cannot be trusted: header only, no sections. */
  private headerOnly(msg: Buffer, transport: Transport, rcode: number): Buffer {
    const out = Buffer.alloc(HEADER_SIZE);
    const qflags = (msg[2]! << 8) | msg[3]!;
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    out.writeUInt16BE(Flag.QR | (qflags & (0xf << 11)) | (qflags & (Flag.RD | Flag.CD)) | this.ra | rcode, 2);
    this.metrics.query(transport, rcode);
    return out;
  }
}

function writeOpt(out: Buffer, at: number, extendedRcode: number, dnssecOk: boolean): void {
  out[at] = 0;
  out.writeUInt16BE(QType.OPT, at + 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, at + 3);
  out.writeUInt32BE((((extendedRcode & 0xff) << 24) | (dnssecOk ? EDNS_DO : 0)) >>> 0, at + 5);
  out.writeUInt16BE(0, at + 9);
}

function zoneOf(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1);
}

export function createDnsHandler(opts: HandlerOptions): QueryHandler {
  return new Handler(opts);
}
