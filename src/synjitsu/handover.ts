import { primeNeighbour } from './arp.js';
import type { MaskContext } from './context.js';
import { endpointKey, seq } from './flowtable.js';
import type { FrameView } from './pdu/frame.js';
import { formatIpv4 } from './pdu/ipv4.js';
import { parseTcpOptions, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpOptions } from './pdu/tcp.js';
import { clientWindowToGuest, type Relay } from './relay.js';
import type { Flow, Service } from './state.js';
import type { Teardown } from './teardown.js';

/**
 * Resend schedule for SYNs handed to a guest that has just come up: its first frames are often
 * lost (link still settling, neighbour entry incomplete), and its own SYN-ACK retransmit waits 1 s.
 * A duplicate SYN makes Linux resend its SYN-ACK at once (rate-limited to one per 500 ms).
 */
const GUEST_SYN_RESEND_MS: readonly number[] = [30, 500, 1000, 2000];
/** A guest that refused a handed-over SYN (not listening yet) gets it again this much later. */
const REFUSED_RETRY_MS = 100;
const REPLAY_RTO_MS = 300;
const REPLAY_MAX_TRIES = 10;

/**
 * Strategy `handshake`, guest side: each buffered flow is handed to the guest as a SYN with the
 * client's address, ISN, MSS and window scale, then its buffered bytes (resent until ACKed, so no
 * acknowledged byte is lost); from then on the relay carries it.
 */
export class Handover {
  private readonly opts = new TcpOptions();

  constructor(
    private readonly ctx: MaskContext,
    private readonly teardown: Teardown,
    private readonly relay: Relay,
  ) {}

  /** Hands over every buffered flow of a service that just became ready. */
  async all(svc: Service): Promise<void> {
    const flows = [...svc.flows.values()].filter((f) => f.state === 'buffering');
    await Promise.all(flows.map((f) => f.nftAdded));
    for (const flow of flows) this.start(flow);
    this.ctx.wire.flush();
  }

  /** A handshake completed after ready(): hand it over on its own. */
  async late(flow: Flow): Promise<void> {
    await flow.nftAdded;
    this.start(flow);
    this.ctx.wire.flush();
  }

  /** Only once the bridge drops the flow's direct frames (nftAdded), and only if it is still held. */
  private start(flow: Flow): void {
    if (flow.state !== 'buffering' || flow.svc.flows.get(endpointKey(flow.clientIp, flow.clientPort)) !== flow) return;
    flow.state = 'syn-sent';
    flow.tries = 0;
    flow.handoverStarted = Date.now();
    this.sendGuestSyn(flow);
  }

  private sendGuestSyn(flow: Flow): void {
    const s = this.ctx.wire.segToGuest(flow);
    s.seq = flow.clientIsn;
    s.ack = 0;
    s.flags = TCP_SYN;
    s.window = Math.min(0xffff, flow.clientWindow << Math.max(0, flow.clientWs));
    s.mss = flow.clientMss;
    s.wscale = flow.clientWs;
    primeNeighbour(flow.svc, this.ctx.wire.guestTx(flow.svc), flow.clientMac, flow.clientIp, this.ctx.limits.maxParkedPerService);
    this.ctx.wire.sendToGuest(flow, s);
    s.mss = -1;
    s.wscale = -1;
    const delay = GUEST_SYN_RESEND_MS[Math.min(flow.tries, GUEST_SYN_RESEND_MS.length - 1)]!;
    flow.tries++;
    clearTimeout(flow.timer);
    if (Date.now() - flow.handoverStarted > this.ctx.limits.handoverTimeoutMs) {
      flow.timer = undefined;
      this.teardown.resetFlow(flow, 'guest-no-answer');
      return;
    }
    this.retryGuestSyn(flow, delay);
  }

  private retryGuestSyn(flow: Flow, delay: number): void {
    flow.timer = setTimeout(() => {
      if (flow.state !== 'syn-sent') return;
      this.ctx.logger.debug('synjitsu handover SYN retransmit', { service: flow.svc.target.service, client: formatIpv4(flow.clientIp), port: flow.clientPort, tries: flow.tries });
      this.sendGuestSyn(flow);
      this.ctx.wire.flush();
    }, delay);
    flow.timer.unref();
  }

  /** A segment from the guest to a client we hold: its answer to the handover SYN, or relayed traffic. */
  fromGuest(svc: Service, v: FrameView): void {
    const flow = svc.flows.get(endpointKey(v.dstIp, v.dstPort));
    if (!flow || flow.svcPort !== v.srcPort) return;
    flow.lastSeen = Date.now();
    const flags = v.flags;
    if (flow.state === 'syn-sent') {
      if ((flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && v.ack === seq.add(flow.clientIsn, 1)) this.accepted(flow, v);
      else if (flags & TCP_RST) this.refused(flow);
      return;
    }
    if (flow.state !== 'relay' && flow.state !== 'closing') return;
    if (flags & TCP_SYN) {
      // Our ACK of its SYN-ACK was lost: repeat it (the client never sees this exchange). Not once
      // the kernel translates: the guest link's egress would shift our guest-space ACK again.
      if (flow.kernel === 'off') this.guestAck(flow);
      return;
    }
    if (flags & TCP_ACK) {
      if (seq.lt(flow.guestAcked, v.ack)) flow.guestAcked = v.ack;
      flow.guestWindow = v.buf.readUInt16BE(v.tcpOff + 14) << Math.max(0, flow.guestWs);
      if (flow.replay) this.pumpReplay(flow);
    }
    this.relay.toClient(flow, v);
  }

  private accepted(flow: Flow, v: FrameView): void {
    clearTimeout(flow.timer);
    flow.timer = undefined;
    const o = parseTcpOptions(v.buf, v.tcpOff, this.opts);
    flow.guestIsn = v.seq;
    flow.guestWs = flow.clientWs >= 0 && o.wscale >= 0 ? o.wscale : -1;
    flow.guestMss = o.mss > 0 ? o.mss : 536;
    flow.guestAcked = seq.add(flow.clientIsn, 1);
    // The SYN-ACK's window is never scaled (RFC 7323).
    flow.guestWindow = v.buf.readUInt16BE(v.tcpOff + 14);
    flow.replay = flow.chunks.length === 1 ? flow.chunks[0] : Buffer.concat(flow.chunks);
    flow.chunks = [];
    flow.replaySent = 0;
    flow.state = 'relay';
    flow.tries = 0;
    // A FIN we buffered is the client's close: it goes to the guest with the replay.
    flow.clientFin = flow.fin;
    if (this.ctx.logger.enabled('debug')) {
      this.ctx.logger.debug('synjitsu handed over', { service: flow.svc.target.service, client: formatIpv4(flow.clientIp), port: flow.clientPort, ms: Date.now() - flow.handoverStarted, bytes: flow.buffered });
    }
    this.ctx.metrics.handedOver(flow.svc.m);
    this.guestAck(flow);
    this.pumpReplay(flow);
  }

  /** Up but not listening yet (the RST guard keeps its RST from the client): ask again shortly. */
  private refused(flow: Flow): void {
    if (Date.now() - flow.handoverStarted > this.ctx.limits.handoverTimeoutMs) {
      this.teardown.resetFlow(flow, 'guest-refused');
      return;
    }
    clearTimeout(flow.timer);
    this.retryGuestSyn(flow, REFUSED_RETRY_MS);
  }

  /** Pure ACK to the guest, as the client, acknowledging its SYN. */
  private guestAck(flow: Flow): void {
    const s = this.ctx.wire.segToGuest(flow);
    s.seq = seq.add(flow.clientIsn, 1);
    s.ack = seq.add(flow.guestIsn, 1);
    s.flags = TCP_ACK;
    s.window = clientWindowToGuest(flow.clientWindow, flow.clientWs, flow.guestWs);
    this.ctx.wire.sendToGuest(flow, s);
  }

  /** Sends buffered client bytes the guest has room for; retransmits on a timer until all are acked. */
  private pumpReplay(flow: Flow): void {
    const replay = flow.replay;
    if (!replay) return;
    const base = seq.add(flow.clientIsn, 1);
    const total = replay.length + (flow.fin ? 1 : 0);
    const acked = Math.max(0, Math.min(total, seq.diff(flow.guestAcked, base)));
    if (acked >= total) {
      this.ctx.budget.give(replay.length);
      flow.replay = undefined;
      clearTimeout(flow.timer);
      flow.timer = undefined;
      this.relay.toKernel(flow);
      return;
    }
    if (flow.replaySent < acked) flow.replaySent = acked;
    const limit = acked + Math.max(flow.guestWindow, flow.guestMss);
    const s = this.ctx.wire.segToGuest(flow);
    s.ack = seq.add(flow.guestIsn, 1);
    s.window = clientWindowToGuest(flow.clientWindow, flow.clientWs, flow.guestWs);
    while (flow.replaySent < replay.length && flow.replaySent < limit) {
      const n = Math.min(flow.guestMss, replay.length - flow.replaySent, limit - flow.replaySent);
      s.seq = seq.add(base, flow.replaySent);
      s.payload = replay.subarray(flow.replaySent, flow.replaySent + n);
      flow.replaySent += n;
      s.flags = TCP_ACK | (flow.replaySent === replay.length ? TCP_PSH : 0);
      if (flow.fin && flow.replaySent === replay.length) s.flags |= TCP_FIN;
      this.ctx.wire.sendToGuest(flow, s);
      flow.svc.m.bytesToGuest.inc(n);
    }
    if (replay.length === 0 && flow.fin) {
      // Nothing but the client's close was buffered: a bare FIN.
      s.seq = base;
      s.payload = undefined;
      s.flags = TCP_ACK | TCP_FIN;
      this.ctx.wire.sendToGuest(flow, s);
    }
    s.payload = undefined;
    if (!flow.timer) {
      flow.timer = setTimeout(() => {
        flow.timer = undefined;
        if (!flow.replay || flow.state !== 'relay') return;
        if (++flow.tries > REPLAY_MAX_TRIES) {
          this.teardown.resetFlow(flow, 'guest-no-ack');
          this.ctx.wire.flush();
          return;
        }
        this.ctx.logger.debug('synjitsu replay retransmit', { service: flow.svc.target.service, client: formatIpv4(flow.clientIp), port: flow.clientPort, tries: flow.tries });
        // Go back to the guest's last ACK and resend from there.
        flow.replaySent = 0;
        this.pumpReplay(flow);
        this.ctx.wire.flush();
      }, REPLAY_RTO_MS);
      flow.timer.unref();
    }
  }
}
