import type { CounterChild, HistogramChild, MetricsRegistry } from '../observe/metrics.js';
import type { RefuseReason } from './flowtable.js';

/** Per-service metric children, resolved once so hot paths increment without label lookups. */
export interface ServiceMetrics {
  parked: CounterChild;
  duplicateSyns: CounterChild;
  handshakes: CounterChild;
  buffered: CounterChild;
  handedOver: CounterChild;
  /** Relayed connections whose translation moved into the kernel (kernel-relay.ts). */
  kernelRelayed: CounterChild;
  bytesBuffered: CounterChild;
  bytesToGuest: CounterChild;
  bytesToClient: CounterChild;
  arpReplies: CounterChild;
  summons: CounterChild;
  readyToReplay: HistogramChild;
}

/** The counting half of SynjitsuStats (the rest is read from the budget and the sockets). */
export interface EventCounts {
  synsSeen: number;
  cookiesSent: number;
  invalidCookies: number;
  refused: number;
  handedOver: number;
  /** Handed-over connections the kernel relays (the rest are relayed by the daemon). */
  kernelRelayed: number;
  reset: number;
  /** Frames larger than a ring slot, ignored. */
  truncated: number;
}

/** Numbers the gauges read at scrape time, from whoever holds them. */
export interface GaugeSources {
  flows(): number;
  parked(): number;
  bufferedBytes(): number;
  ringDrops(): number;
  txDropped(): number;
}

/**
 * Every Synjitsu metric family. Each event is counted twice on purpose: in `counts` for stats() (a
 * test or the status page reads them without parsing Prometheus text) and in the registry.
 */
export class SynjitsuMetrics {
  readonly counts: EventCounts = { synsSeen: 0, cookiesSent: 0, invalidCookies: 0, refused: 0, handedOver: 0, kernelRelayed: 0, reset: 0, truncated: 0 };
  private readonly refusedFamily;
  private readonly resetFamily;
  private readonly invalidCookieChild: CounterChild;
  private readonly cookieChild: CounterChild;

  constructor(private readonly registry: MetricsRegistry) {
    this.refusedFamily = registry.counter('synjitsu_connections_refused_total', 'Connections or SYNs not held, by reason');
    this.resetFamily = registry.counter('synjitsu_connections_reset_total', 'Held connections reset (RST sent to the client), by reason');
    this.invalidCookieChild = registry.counter('synjitsu_invalid_cookies_total', 'ACKs whose SYN cookie did not verify').labels();
    this.cookieChild = registry.counter('synjitsu_syn_cookies_total', 'SYN-ACKs sent with a SYN cookie (no state kept)').labels();
  }

  gauges(read: GaugeSources): void {
    const m = this.registry;
    m.gauge('synjitsu_flows', 'Handshaken connections held (buffering or relayed)').labels().collect = read.flows;
    m.gauge('synjitsu_parked_syns', 'SYNs currently parked').labels().collect = read.parked;
    m.gauge('synjitsu_buffered_bytes', 'Client bytes currently buffered').labels().collect = read.bufferedBytes;
    m.gauge('synjitsu_ring_drops', 'Frames the kernel dropped because the receive ring was full').labels().collect = read.ringDrops;
    m.gauge('synjitsu_tx_dropped', 'Frames the kernel refused to send').labels().collect = read.txDropped;
    m.gauge('synjitsu_truncated_frames', 'Captured frames larger than a ring slot (ignored; the sender retransmits)').labels().collect = () =>
      this.counts.truncated;
  }

  refused(reason: RefuseReason): void {
    this.counts.refused++;
    this.refusedFamily.labels({ reason }).inc();
  }

  reset(service: string, reason: string): void {
    this.counts.reset++;
    this.resetFamily.labels({ service, reason }).inc();
  }

  cookieSent(): void {
    this.counts.cookiesSent++;
    this.cookieChild.inc();
  }

  invalidCookie(): void {
    this.counts.invalidCookies++;
    this.invalidCookieChild.inc();
  }

  handedOver(m: ServiceMetrics, n = 1): void {
    m.handedOver.inc(n);
    this.counts.handedOver += n;
  }

  kernelRelayed(m: ServiceMetrics): void {
    m.kernelRelayed.inc();
    this.counts.kernelRelayed++;
  }

  forService(service: string): ServiceMetrics {
    const m = this.registry;
    const labels = { service };
    const conn = m.counter('synjitsu_connections_total', 'Connections by event: buffered (handshake completed by us), handed_over, kernel_relay (its translation moved into the kernel)');
    const bytes = m.counter('synjitsu_bytes_total', 'Payload bytes by direction: buffered, to_guest (relayed), to_client (relayed)');
    return {
      parked: m.counter('synjitsu_parked_syns_total', 'SYNs parked until the guest is up').labels(labels),
      duplicateSyns: m.counter('synjitsu_duplicate_syns_total', 'Retransmitted SYNs absorbed while parked').labels(labels),
      handshakes: m.counter('synjitsu_handshakes_total', 'Handshakes completed on behalf of a booting guest').labels(labels),
      buffered: conn.labels({ ...labels, event: 'buffered' }),
      handedOver: conn.labels({ ...labels, event: 'handed_over' }),
      kernelRelayed: conn.labels({ ...labels, event: 'kernel_relay' }),
      bytesBuffered: bytes.labels({ ...labels, direction: 'buffered' }),
      bytesToGuest: bytes.labels({ ...labels, direction: 'to_guest' }),
      bytesToClient: bytes.labels({ ...labels, direction: 'to_client' }),
      arpReplies: m.counter('synjitsu_arp_replies_total', 'ARP requests answered for a masked IP').labels(labels),
      summons: m.counter('synjitsu_summons_total', 'Boots started by a SYN (summon-on-SYN)').labels(labels),
      readyToReplay: m
        .histogram('synjitsu_ready_to_replay_seconds', 'From ready() to the last held SYN sent to the guest (orchestration overhead)')
        .labels(labels),
    };
  }
}
