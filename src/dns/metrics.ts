/**
 * DNS metric families and pre-resolved children, so the hot path increments a field instead of
 * looking a label set up in a map.
 */
import { performance } from 'node:perf_hooks';
import type { CounterChild, Gauge, HistogramChild, MetricsRegistry } from '../observe/metrics.js';
import type { Transport } from './types.js';
import { rcodeName } from './constants.js';

/** `sync`: answered within the call (cache hits, ready services, negatives); sampled 1/64. */
export type AnswerPath = 'sync' | 'summon' | 'forward';

export class DnsMetrics {
  private readonly queries;
  private readonly byRcode: Record<Transport, CounterChild[]> = { udp: [], tcp: [] };
  readonly malformed: Record<Transport, CounterChild>;
  readonly responsesDropped: CounterChild;
  readonly truncated: CounterChild;
  /** UDP queries larger than the native socket's slot: dropped. */
  readonly udpOversized: CounterChild;
  /** UDP replies dropped because the send queue was full or the kernel refused them. */
  readonly udpSendDropped: CounterChild;
  /** Native UDP replies waiting for socket buffer space (collected at scrape time). */
  readonly udpSendQueued: Gauge;
  readonly forwarded: CounterChild;
  readonly upstreamTimeouts: CounterChild;
  readonly upstreamMismatched: CounterChild;
  readonly upstreamTcpRetries: CounterChild;
  readonly forwardOverload: CounterChild;
  private readonly upstreamFailures;
  readonly summonFailures: CounterChild;
  readonly summonOverload: CounterChild;
  /** Queries for names we do not own from clients outside --allow-forward: never forwarded. */
  readonly forwardRefused: CounterChild;
  /** Our UDP answers over a client prefix's --rrl-rate (dropped or slipped). */
  readonly rrlLimited: CounterChild;
  /** Of those, the ones sent truncated (TC=1) so a real client retries over TCP. */
  readonly rrlSlipped: CounterChild;
  readonly tcpConnections: Gauge;
  readonly tcpRejected: CounterChild;
  private readonly latency;
  readonly latencyByPath: Record<AnswerPath, HistogramChild>;

  constructor(registry: MetricsRegistry) {
    this.queries = registry.counter('jitsu_dns_queries_total', 'DNS queries answered, by transport and response code');
    const malformed = registry.counter('jitsu_dns_malformed_total', 'DNS messages dropped because they did not parse');
    this.malformed = { udp: malformed.labels({ transport: 'udp' }), tcp: malformed.labels({ transport: 'tcp' }) };
    this.responsesDropped = registry
      .counter('jitsu_dns_responses_received_total', 'DNS responses (QR=1) received on the listener and dropped')
      .labels();
    this.truncated = registry.counter('jitsu_dns_truncated_total', 'UDP answers sent truncated (TC=1)').labels();
    const udpDropped = registry.counter('jitsu_dns_udp_dropped_total', 'UDP datagrams dropped by the server, by reason');
    this.udpOversized = udpDropped.labels({ reason: 'oversized_query' });
    this.udpSendDropped = udpDropped.labels({ reason: 'send' });
    this.udpSendQueued = registry.gauge('jitsu_dns_udp_send_queued', 'UDP replies waiting in the native send queue for buffer space');
    this.forwarded = registry.counter('jitsu_dns_forwarded_total', 'Queries forwarded upstream').labels();
    this.upstreamFailures = registry.counter('jitsu_dns_upstream_failures_total', 'Forwarded queries answered SERVFAIL, by reason');
    this.upstreamTimeouts = registry.counter('jitsu_dns_upstream_timeouts_total', 'Upstream attempts that timed out').labels();
    this.upstreamMismatched = registry
      .counter('jitsu_dns_upstream_mismatched_total', 'Upstream datagrams ignored: wrong ID, question or source')
      .labels();
    this.upstreamTcpRetries = registry
      .counter('jitsu_dns_upstream_tcp_retries_total', 'Forwarded queries retried over TCP after a truncated reply')
      .labels();
    this.forwardOverload = this.upstreamFailures.labels({ reason: 'overload' });
    this.summonFailures = registry
      .counter('jitsu_dns_summon_failures_total', 'Queries answered SERVFAIL because the service failed to come up')
      .labels();
    this.summonOverload = registry
      .counter('jitsu_dns_summon_overload_total', 'Queries answered SERVFAIL because too many already wait for booting services')
      .labels();
    this.forwardRefused = registry
      .counter('jitsu_dns_forward_refused_total', 'Queries for names we do not own from clients outside --allow-forward, answered without forwarding (REFUSED, or NXDOMAIN inside our zones)')
      .labels();
    this.rrlLimited = registry
      .counter('jitsu_dns_rrl_limited_total', 'UDP answers over the per-prefix rate (--rrl-rate): dropped, or slipped (sent truncated)')
      .labels();
    this.rrlSlipped = registry.counter('jitsu_dns_rrl_slipped_total', 'Rate-limited UDP answers sent truncated (TC=1, --rrl-slip)').labels();
    this.tcpConnections = registry.gauge('jitsu_dns_tcp_connections', 'Open DNS-over-TCP connections');
    this.tcpRejected = registry
      .counter('jitsu_dns_tcp_rejected_total', 'TCP connections closed for a bad frame, idle timeout or over the limit')
      .labels();
    this.latency = registry.histogram('jitsu_dns_answer_seconds', 'Time from query to answer; path=sync is sampled 1 in 64');
    this.latencyByPath = {
      sync: this.latency.labels({ path: 'sync' }),
      summon: this.latency.labels({ path: 'summon' }),
      forward: this.latency.labels({ path: 'forward' }),
    };
  }

  query(transport: Transport, rcode: number): void {
    const child = this.byRcode[transport][rcode];
    // The first answer with an rcode resolves its child: apart, so this inlines into the hot path.
    if (child === undefined) this.firstQuery(transport, rcode);
    else child.value++;
  }

  private firstQuery(transport: Transport, rcode: number): void {
    const child = this.queries.labels({ transport, rcode: rcodeName(rcode) });
    this.byRcode[transport][rcode] = child;
    child.value++;
  }

  /** Observes the latency of an answer on `path` to a query that arrived at `t0` (performance.now()). */
  answeredSince(path: AnswerPath, t0: number): void {
    this.latencyByPath[path].observe((performance.now() - t0) / 1000);
  }

  upstreamFailure(reason: string): void {
    this.upstreamFailures.labels({ reason }).inc();
  }
}
