import type { PacketSocket } from '../native/index.js';
import type { CounterChild, HistogramChild, MetricsRegistry } from '../observe/metrics.js';
import type { MaskTarget } from './masker.js';
import type { Tuple } from './nft.js';
import type { TxQueue } from './tx.js';

// What Synjitsu holds per service and per connection: plain state; the decisions live in synjitsu.ts.

/** Window scale we offer clients that offer one (Linux's usual value, so relayed windows rescale little). */
export const OUR_WSCALE = 7;

export type Phase = 'watched' | 'booting' | 'ready';
export type FlowState = 'buffering' | 'syn-sent' | 'relay' | 'closing';

export interface Parked {
  frame: Buffer;
  isn: number;
}

export interface ServiceMetrics {
  parked: CounterChild;
  duplicateSyns: CounterChild;
  handshakes: CounterChild;
  buffered: CounterChild;
  handedOver: CounterChild;
  bytesBuffered: CounterChild;
  bytesToGuest: CounterChild;
  bytesToClient: CounterChild;
  arpReplies: CounterChild;
  summons: CounterChild;
  readyToReplay: HistogramChild;
}

export interface Service {
  target: MaskTarget;
  ip: number;
  mac: Buffer;
  phase: Phase;
  summoned: boolean;
  parked: Map<number, Parked>;
  flows: Map<number, Flow>;
  /** Where frames for the guest go once it is up: its host-side link, else the bridge. */
  guestTx: TxQueue | undefined;
  linkSocket: PacketSocket | undefined;
  /** The link guestTx sends on ('' = the bridge). */
  linkName: string;
  guestMac: Buffer;
  readyAt: number;
  maskingSince: number;
  /** Parked SYNs replayed to the guest and not yet answered by its SYN-ACK (resent on a schedule). */
  replayed: Map<number, Parked>;
  /** Client IPs whose MAC we told the guest in this readiness period. */
  primed: Set<number>;
  m: ServiceMetrics;
}

export class Flow {
  state: FlowState = 'buffering';
  chunks: Buffer[] = [];
  buffered = 0;
  /** Client FIN received and acknowledged by us (replayed after the data). */
  fin = false;
  clientWindow = 0;
  guestIsn = 0;
  guestWs = -1;
  guestMss = 536;
  guestAcked = 0;
  guestWindow = 0;
  replay: Buffer | undefined;
  replaySent = 0;
  tries = 0;
  handoverStarted = 0;
  timer: NodeJS.Timeout | undefined;
  lastSeen = Date.now();
  clientFin = false;
  guestFin = false;
  nftAdded: Promise<void> | undefined;

  constructor(
    readonly svc: Service,
    readonly clientIp: number,
    readonly clientPort: number,
    readonly svcPort: number,
    readonly clientMac: Buffer,
    readonly clientIsn: number,
    readonly ourIsn: number,
    readonly clientMss: number,
    readonly clientWs: number,
    public rcvNxt: number,
  ) {}

  get ourWs(): number {
    return this.clientWs >= 0 ? OUR_WSCALE : 0;
  }

  tuples(): Tuple[] {
    return [
      { srcIp: this.clientIp, srcPort: this.clientPort, dstIp: this.svc.ip, dstPort: this.svcPort },
      { srcIp: this.svc.ip, srcPort: this.svcPort, dstIp: this.clientIp, dstPort: this.clientPort },
    ];
  }
}

/** Per-service metric children, created once so hot paths increment without lookups. */
export function serviceMetrics(m: MetricsRegistry, service: string): ServiceMetrics {
  const labels = { service };
  const conn = m.counter('synjitsu_connections_total', 'Connections by event: buffered (handshake completed by us), handed_over');
  const bytes = m.counter('synjitsu_bytes_total', 'Payload bytes by direction: buffered, to_guest (relayed), to_client (relayed)');
  return {
    parked: m.counter('synjitsu_parked_syns_total', 'SYNs parked until the guest is up').labels(labels),
    duplicateSyns: m.counter('synjitsu_duplicate_syns_total', 'Retransmitted SYNs absorbed while parked').labels(labels),
    handshakes: m.counter('synjitsu_handshakes_total', 'Handshakes completed on behalf of a booting guest').labels(labels),
    buffered: conn.labels({ ...labels, event: 'buffered' }),
    handedOver: conn.labels({ ...labels, event: 'handed_over' }),
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
