/**
 * The DNS path (DESIGN.md section 3), composed: one step per file in `steps/`, linked here in the
 * order a query travels. Each step answers or hands the query to the next:
 *
 *   parse -> cache -> authority -> forward -> nxdomain -> refuse
 *
 * and every answer we make ourselves leaves through RRL, then fit (truncation, personal copy). The
 * summon gate sits in front of each A/AAAA/ANY answer for a configured name (cache hit or not); the
 * forwarding access list in front of the upstream. A fault in any step (a bug, an answer too large
 * for any transport) costs the query one SERVFAIL, never the listener: the guard around the path.
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import { Flag, Rcode } from './constants.js';
import type { Forwarder } from './forwarder.js';
import { DnsMetrics } from './metrics.js';
import { parseQuery } from './query.js';
import type { ResponseRateLimiter } from './rrl.js';
import type { AddressSet, QuerySource } from './source.js';
import { ForwardAccess } from './steps/access.js';
import { ZoneAnswers } from './steps/answers.js';
import { AuthorityStep } from './steps/authority.js';
import { CacheStep } from './steps/cache.js';
import { FitStep } from './steps/fit.js';
import { ForwardStep } from './steps/forward.js';
import { NxdomainStep } from './steps/nxdomain.js';
import { ParseStep } from './steps/parse.js';
import { RateLimitStep } from './steps/rate-limit.js';
import { RefuseStep } from './steps/refuse.js';
import { Replies } from './steps/reply.js';
import { DnsRequest, link, type Reply, type Step } from './steps/step.js';
import { SummonStep } from './steps/summon.js';
import type { DnsHandler, Summoner, Transport } from './types.js';

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

/** Sample the latency of 1 in 64 synchronous answers: timing every one costs more than the answer. */
const SAMPLE_MASK = 63;

class Handler implements QueryHandler {
  private readonly path: Step;
  private readonly cache: CacheStep;
  private readonly metrics: DnsMetrics;
  private readonly replies: Replies;
  private readonly logger: Logger;
  /** Reused for every query: valid during handle() only (steps that answer later detach a copy). */
  private readonly request = new DnsRequest();
  private tick = 0;

  constructor(opts: HandlerOptions) {
    const { summoner, forwarder, logger } = opts;
    this.metrics = new DnsMetrics(opts.metrics);
    const metrics = this.metrics;
    const replies = new Replies(metrics, forwarder ? Flag.RA : 0);
    this.replies = replies;
    this.logger = logger;
    const answers = new ZoneAnswers({ summoner, serial: opts.serial ?? Math.floor(Date.now() / 1000), ttl: opts.ttl ?? 60, ra: forwarder !== undefined });
    // Every answer's way out: the RRL gate (our own UDP answers), then fit to the client's datagram.
    const rrl = opts.rrl === undefined ? undefined : new RateLimitStep(opts.rrl, replies, metrics);
    const out = new FitStep(rrl, replies, metrics);
    const summon = new SummonStep({ answers, out, replies, metrics, logger, maxPending: opts.maxPendingSummons ?? 10_000 });
    this.cache = new CacheStep({ summoner, summon, out, entries: opts.cacheEntries ?? 4096 });
    this.path = link(
      // Header rules, the question, OPT.
      new ParseStep(replies, metrics),
      // Cached answers: the summon gate, then out.
      this.cache,
      // Configured names: the summon gate, then their addresses or NODATA + SOA.
      new AuthorityStep({ summoner, summon, answers, out }),
      // Names we do not own, for clients in the access list: upstream.
      new ForwardStep({ forwarder, access: new ForwardAccess(opts.allowForward, metrics), fit: out, replies, metrics, logger }),
      // Other names in our zones: NXDOMAIN + SOA, the apex's SOA.
      new NxdomainStep(summoner, answers, out),
      // The rest: REFUSED.
      new RefuseStep(rrl, replies),
    );
  }

  clearCache(): void {
    this.cache.clear();
  }

  handle(msg: Buffer, transport: Transport, source?: QuerySource): Reply {
    const req = this.request.start(msg, transport, source);
    // The guard is here rather than a step of its own: one call less on every query, and TurboFan
    // makes a try block free when nothing throws.
    try {
      return (++this.tick & SAMPLE_MASK) !== 0 ? this.path.serve(req) : this.timed(req);
    } catch (err) {
      return this.fault(req, err);
    }
  }

  /** A step threw: SERVFAIL with the question, or nothing if the message has none we can read. */
  private fault(req: DnsRequest, err: unknown): Buffer | null {
    this.logger.warn('dns handler failed', { error: errorMessage(err) });
    try {
      parseQuery(req.msg, req.q); // the parse step may not have run (or finished) for this message
    } catch {
      return null;
    }
    return this.replies.bare(req, Rcode.SERVFAIL);
  }

  /** The 1 in 64: kept out of handle() so the path inlines into it. */
  private timed(req: DnsRequest): Reply {
    const t0 = performance.now();
    const out = this.path.serve(req);
    if (out !== null && !(out instanceof Promise)) this.metrics.latencyByPath.sync.observe((performance.now() - t0) / 1000);
    return out;
  }
}

export function createDnsHandler(opts: HandlerOptions): QueryHandler {
  return new Handler(opts);
}
