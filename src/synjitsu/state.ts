import type { PacketSocket } from '../native/index.js';
import { maskStrategy, type MaskStrategy } from '../masking/registry.js';
import type { MaskTarget } from './masker.js';
import type { ServiceMetrics } from './metrics.js';
import type { Tuple } from './nft.js';
import type { TxQueue } from './tx.js';

// What Synjitsu holds per service and per connection: plain state; the decisions live in the
// strategy modules (arp, park, handshake, handover, relay, teardown).

/** Window scale we offer clients that offer one (Linux's usual value, so relayed windows rescale little). */
export const OUR_WSCALE = 7;

export type Phase = 'watched' | 'booting' | 'ready';
export type FlowState = 'buffering' | 'syn-sent' | 'relay' | 'closing';
/**
 * Who translates a relayed flow: the daemon ('off'); the kernel while the bridge still drops the
 * flow's forwarded frames, so the daemon passes its copies on as they are ('pending'); the kernel
 * alone, the daemon only watching for its end ('on').
 */
export type KernelRelayState = 'off' | 'pending' | 'on';


export interface Parked {
  frame: Buffer;
  isn: number;
}

export interface Service {
  target: MaskTarget;
  /** The target's masking strategy, looked up once (the packet path asks it per segment). */
  strategy: MaskStrategy;
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
  /** Relay: the next sequence number the client expects from us (our space): what a RST must carry. */
  toClientNxt = 0;
  nftAdded: Promise<void> | undefined;
  kernel: KernelRelayState = 'off';

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

export function newService(target: MaskTarget, ip: number, mac: Buffer, phase: Phase, m: ServiceMetrics): Service {
  return {
    target,
    strategy: maskStrategy(target.mask),
    ip,
    mac,
    phase,
    summoned: false,
    parked: new Map(),
    flows: new Map(),
    guestTx: undefined,
    linkSocket: undefined,
    linkName: '',
    guestMac: mac,
    readyAt: 0,
    maskingSince: 0,
    replayed: new Map(),
    primed: new Set(),
    m,
  };
}
