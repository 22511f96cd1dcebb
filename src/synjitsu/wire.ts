import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import { loadNative, type PacketSocket } from '../native/index.js';
import type { HostPort } from './hostport.js';
import type { KernelRelay } from './kernel-relay.js';
import { macEquals } from './pdu/ethernet.js';
import { TCP_ACK, TCP_RST, writeTcpFrame, type SegmentSpec } from './pdu/tcp.js';
import type { Flow, Service } from './state.js';
import { TxQueue } from './tx.js';

/** Room reserved per TCP frame we write: an Ethernet MTU frame plus our largest options. */
export const MAX_FRAME = 1514 + 64;

/**
 * Where our frames leave: the bridge, the host port (for the host as a client) or a guest's own link.
 * Every frame is built in `seg`, one SegmentSpec reused for all, so sending allocates nothing; queues
 * written during a receive batch are flushed together at its end.
 */
export class Wire {
  readonly seg: SegmentSpec;
  readonly hostTx: TxQueue | undefined;
  private readonly hostSocket: PacketSocket | undefined;
  private readonly dirty = new Set<TxQueue>();
  /** Drops counted by guest links since closed, so txDropped() never goes down. */
  private closedLinksDropped = 0;

  constructor(
    readonly bridgeTx: TxQueue,
    private readonly hostPort: HostPort | undefined,
    private readonly logger: Logger,
    private readonly kernelRelay: KernelRelay | undefined,
  ) {
    if (hostPort) {
      this.hostSocket = new (loadNative().PacketSocket)({ iface: hostPort.name });
      this.hostTx = new TxQueue(this.hostSocket, 1 << 18);
    }
    const zero = Buffer.alloc(6);
    this.seg = { srcMac: zero, dstMac: zero, srcIp: 0, dstIp: 0, srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0 };
  }

  /** Frames to the host itself enter the bridge through our host port; all others leave via the bridge. */
  clientTx(mac: Uint8Array, off: number): TxQueue {
    const host = this.hostPort;
    if (this.hostTx && host && macEquals(mac, off, host.bridgeMac)) {
      this.dirty.add(this.hostTx);
      return this.hostTx;
    }
    return this.bridgeTx;
  }

  /** Frames through the host port carry its MAC as source: the capture skips them when they come back. */
  stamp(tx: TxQueue, at: number): void {
    if (tx === this.hostTx) this.hostPort!.mac.copy(tx.buffer, at + 6);
  }

  sendToClient(s: SegmentSpec): void {
    const tx = this.clientTx(s.dstMac, 0);
    const at = tx.reserve(MAX_FRAME);
    const len = writeTcpFrame(tx.buffer, at, s);
    this.stamp(tx, at);
    tx.commit(len);
  }

  guestTx(svc: Service): TxQueue {
    const tx = svc.guestTx ?? this.bridgeTx;
    this.dirty.add(tx);
    return tx;
  }

  sendToGuest(flow: Flow, s: SegmentSpec): void {
    const tx = this.guestTx(flow.svc);
    const at = tx.reserve(MAX_FRAME);
    tx.commit(writeTcpFrame(tx.buffer, at, s));
  }

  /** `seg` addressed from the flow's client to the guest (we speak as the client). */
  segToGuest(flow: Flow): SegmentSpec {
    const s = this.seg;
    s.srcMac = flow.clientMac;
    s.dstMac = flow.svc.guestMac;
    s.srcIp = flow.clientIp;
    s.dstIp = flow.svc.ip;
    s.srcPort = flow.clientPort;
    s.dstPort = flow.svcPort;
    s.payload = undefined;
    return s;
  }

  /** `seg` addressed from the service to a client (we speak as the service). */
  segToClient(svc: Service, clientMac: Uint8Array, clientIp: number, clientPort: number, svcPort: number): SegmentSpec {
    const s = this.seg;
    s.srcMac = svc.mac;
    s.dstMac = clientMac;
    s.srcIp = svc.ip;
    s.dstIp = clientIp;
    s.srcPort = svcPort;
    s.dstPort = clientPort;
    s.payload = undefined;
    return s;
  }

  sendRst(svc: Service, clientMac: Uint8Array, clientIp: number, clientPort: number, svcPort: number, seqNo: number, ackNo: number): void {
    const s = this.segToClient(svc, clientMac, clientIp, clientPort, svcPort);
    s.seq = seqNo;
    s.ack = ackNo;
    s.flags = TCP_RST | TCP_ACK;
    s.window = 0;
    this.sendToClient(s);
  }

  flush(): void {
    this.bridgeTx.flush();
    this.hostTx?.flush();
    for (const q of this.dirty) q.flush();
    this.dirty.clear();
  }

  openLink(svc: Service, link: string | undefined): void {
    // A reboot may bring the guest back on another tap: reopen when the link changed.
    if (svc.guestTx && svc.linkName === (link ?? '')) return;
    this.closeLink(svc);
    if (link) {
      try {
        svc.linkSocket = new (loadNative().PacketSocket)({ iface: link });
        svc.guestTx = new TxQueue(svc.linkSocket, 1 << 18);
        svc.linkName = link;
        return;
      } catch (err) {
        this.logger.warn('synjitsu: cannot open guest link, sending via the bridge', { link, error: errorMessage(err) });
      }
    }
    svc.guestTx = this.bridgeTx;
    svc.linkName = '';
  }

  closeLink(svc: Service): void {
    if (svc.guestTx && svc.guestTx !== this.bridgeTx) {
      svc.guestTx.flush();
      this.closedLinksDropped += svc.guestTx.dropped;
    }
    if (svc.linkName) this.kernelRelay?.detach(svc.linkName);
    svc.linkSocket?.close();
    svc.linkSocket = undefined;
    svc.guestTx = undefined;
    svc.linkName = '';
  }

  dropped(services: Iterable<Service>): number {
    let n = this.bridgeTx.dropped + this.closedLinksDropped + (this.hostTx?.dropped ?? 0);
    for (const svc of services) if (svc.guestTx && svc.guestTx !== this.bridgeTx) n += svc.guestTx.dropped;
    return n;
  }

  close(): void {
    this.hostSocket?.close();
  }
}
