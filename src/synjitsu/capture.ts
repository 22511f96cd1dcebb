import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import { FRAME_KERNEL_RELAYED, FRAME_TRUNCATED, loadNative, type PacketSocket, type RingOptions } from '../native/index.js';
import { watchFilter } from './bpf.js';
import type { EventCounts } from './metrics.js';
import { macEquals } from './pdu/ethernet.js';
import { FRAME_ARP, FRAME_TCP, FrameView } from './pdu/frame.js';

export interface CaptureOptions {
  iface: string;
  ring: RingOptions | undefined;
  /** Our host port's MAC when the host is a client too: its frames are captured, ours skipped. */
  hostPortMac: Buffer | undefined;
  logger: Logger;
  counts: EventCounts;
  /** IPs whose ARP and TCP the filter lets through (asked again on every refilter()). */
  watchedIps(): number[];
  onTcp(v: FrameView): void;
  onArp(v: FrameView): void;
  /** After each batch: everything the batch queued leaves in one send per queue. */
  afterBatch(): void;
  /** The kernel relay's mark: frames carrying it are captured as headers only unless wholeRelayedFrames(). */
  relayMark: number | undefined;
}

/**
 * The promiscuous AF_PACKET capture on the bridge: one receive ring, polled on the event loop, whose
 * BPF filter follows the watched IPs; each frame of a batch is parsed into one reused view.
 */
export class Capture {
  readonly socket: PacketSocket;
  private readonly data = Buffer.allocUnsafe(1 << 20);
  private readonly meta = new Uint32Array(4096 * 3);
  private readonly view = new FrameView();
  private refilterPending = false;
  private filterKey = '\u0000';
  private closed = false;
  /** Flows that need whole copies of kernel-translated frames (handoff in progress). */
  private wholeFramesWanted = 0;

  constructor(private readonly o: CaptureOptions) {
    this.socket = new (loadNative().PacketSocket)({
      iface: o.iface,
      receive: true,
      promisc: true,
      // The host's own frames (it is a client too) are outgoing on the bridge.
      ignoreOutgoing: !o.hostPortMac,
      filter: watchFilter([]),
      ...(o.ring ? { ring: o.ring } : {}),
      data: this.data,
      meta: this.meta,
      onBatch: (count) => this.onBatch(count),
    });
  }

  private onBatch(count: number): void {
    const v = this.view;
    const data = this.data;
    const meta = this.meta;
    const own = this.o.hostPortMac;
    for (let i = 0; i < count; i++) {
      // Our own frames to the host come back up the bridge: never act on them.
      if (own && macEquals(data, meta[i * 3]! + 6, own)) continue;
      const flags = meta[i * 3 + 2]!;
      const kernelRelayed = (flags & FRAME_KERNEL_RELAYED) !== 0;
      if (flags & FRAME_TRUNCATED && !kernelRelayed) {
        // Never act on a frame whose payload we do not have: the sender will retransmit.
        this.o.counts.truncated++;
        continue;
      }
      try {
        // A kernel-translated frame may be headers only (the filter cut it): the kernel forwards it.
        const kind = v.parse(data, meta[i * 3]!, meta[i * 3 + 1]!, kernelRelayed);
        v.kernelRelayed = kernelRelayed;
        if (kind === FRAME_TCP) this.o.onTcp(v);
        else if (kind === FRAME_ARP) this.o.onArp(v);
      } catch (err) {
        this.o.logger.warn('synjitsu: frame handling failed', { error: errorMessage(err) });
      }
    }
    this.o.afterBatch();
  }

  /** Coalesced per event-loop turn, and setsockopt only when the set of IPs changed. */
  refilter(): void {
    if (this.closed || this.refilterPending) return;
    this.refilterPending = true;
    setImmediate(() => {
      this.refilterPending = false;
      this.applyFilter();
    });
  }

  /**
   * While a flow hands its translation to the kernel, the daemon passes the kernel's copies on, so
   * it needs them whole; at once (not next turn): the kernel starts marking frames right after.
   */
  wholeRelayedFrames(wanted: boolean): void {
    this.wholeFramesWanted += wanted ? 1 : -1;
    this.applyFilter();
  }

  private applyFilter(): void {
    if (this.closed) return;
    const ips = this.o.watchedIps().sort((a, b) => a - b);
    const cut = this.wholeFramesWanted > 0 ? undefined : this.o.relayMark;
    const key = `${ips.join(',')}/${cut ?? ''}`;
    if (key === this.filterKey) return;
    try {
      this.socket.setFilter(watchFilter(ips, cut));
      this.filterKey = key;
    } catch (err) {
      this.o.logger.error('synjitsu: cannot update capture filter', { error: errorMessage(err) });
    }
  }

  ringDrops(): number {
    return this.socket.stats().drops;
  }

  close(): void {
    this.closed = true;
    this.socket.close();
  }
}
