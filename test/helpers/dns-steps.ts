/** Builders for the steps' unit tests: a request as the parse step leaves it, stub steps. */
import { MetricsRegistry } from '../../src/observe/metrics.js';
import { DnsMetrics } from '../../src/dns/metrics.js';
import { parseQuery } from '../../src/dns/query.js';
import type { QuerySource } from '../../src/dns/source.js';
import type { Transport } from '../../src/dns/types.js';
import { Replies } from '../../src/dns/steps/reply.js';
import { DnsRequest, type Reply, type Step } from '../../src/dns/steps/step.js';

export function parsedRequest(msg: Buffer, transport: Transport = 'udp', source?: QuerySource): DnsRequest {
  const req = new DnsRequest().start(msg, transport, source);
  parseQuery(msg, req.q);
  return req;
}

export function kit(ra = 0): { registry: MetricsRegistry; metrics: DnsMetrics; replies: Replies } {
  const registry = new MetricsRegistry();
  const metrics = new DnsMetrics(registry);
  return { registry, metrics, replies: new Replies(metrics, ra) };
}

/** A last step that records what reached it and answers with `reply`. */
export function recorder(reply: Reply = null): Step & { seen: DnsRequest[] } {
  const seen: DnsRequest[] = [];
  return { seen, serve: (req) => (seen.push(req), reply) };
}
