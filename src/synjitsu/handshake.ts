import { errorMessage } from '../errors.js';
import type { MaskContext } from './context.js';
import { SynCookies } from './cookies.js';
import { seq } from './flowtable.js';
import type { FrameView } from './pdu/frame.js';
import { parseTcpOptions, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpOptions } from './pdu/tcp.js';
import { OUR_MSS, type Relay } from './relay.js';
import { Flow, OUR_WSCALE, type Service } from './state.js';
import type { Teardown } from './teardown.js';

/**
 * Strategy `handshake`, client side: SYNs are answered with a SYN cookie (no state, so a flood
 * allocates nothing); the completing ACK creates a flow whose bytes we ACK and buffer until handover.
 */
export class Handshake {
  private readonly cookies = new SynCookies();
  private readonly opts = new TcpOptions();

  constructor(
    private readonly ctx: MaskContext,
    private readonly teardown: Teardown,
    private readonly relay: Relay,
  ) {}

  synAck(svc: Service, v: FrameView): void {
    const o = parseTcpOptions(v.buf, v.tcpOff, this.opts);
    const isn = this.cookies.make(v.srcIp, v.srcPort, v.dstIp, v.dstPort, v.seq, o.mss, o.wscale);
    const s = this.ctx.wire.segToClient(svc, v.buf.subarray(v.off + 6, v.off + 12), v.srcIp, v.srcPort, v.dstPort);
    s.seq = isn;
    s.ack = seq.add(v.seq, 1);
    s.flags = TCP_SYN | TCP_ACK;
    s.window = Math.min(0xffff, this.ctx.budget.space(0));
    s.mss = OUR_MSS;
    s.wscale = o.wscale >= 0 ? OUR_WSCALE : -1;
    // Timestamps and SACK are never offered: the guest's values would differ from ours after handover.
    s.sackPermitted = false;
    this.ctx.wire.sendToClient(s);
    s.mss = -1;
    s.wscale = -1;
    this.ctx.metrics.cookieSent();
  }

  /**
   * The ACK completing a handshake we answered: a flow when its cookie verifies and the limits allow.
   * `countInvalid` is false after ready(), when most ACKs belong to the guest's own connections.
   */
  cookieAck(svc: Service, v: FrameView, key: number, countInvalid = true): Flow | undefined {
    const { budget, metrics, wire } = this.ctx;
    const clientIsn = seq.add(v.seq, -1);
    const ourIsn = seq.add(v.ack, -1);
    const facts = this.cookies.check(v.srcIp, v.srcPort, v.dstIp, v.dstPort, clientIsn, ourIsn);
    if (!facts) {
      if (countInvalid) metrics.invalidCookie();
      return undefined;
    }
    const refused = budget.admitFlow(svc.flows.size);
    if (refused) {
      metrics.refused(refused);
      wire.sendRst(svc, v.buf.subarray(v.off + 6, v.off + 12), v.srcIp, v.srcPort, v.dstPort, v.ack, seq.add(v.seq, v.payloadLen));
      return undefined;
    }
    const clientMac = Buffer.from(v.buf.subarray(v.off + 6, v.off + 12));
    const flow = new Flow(svc, v.srcIp, v.srcPort, v.dstPort, clientMac, clientIsn, ourIsn, facts.mss, facts.wscale, v.seq);
    svc.flows.set(key, flow);
    svc.m.handshakes.inc();
    svc.m.buffered.inc();
    // Install the bridge drop for this connection now, so the handover does not wait for nft.
    flow.nftAdded = this.ctx.relayFilter.add(flow.tuples()).catch((err: unknown) => {
      this.ctx.logger.error('synjitsu: nft add failed; relayed connections may break', { error: errorMessage(err) });
    });
    this.clientSegment(flow, v);
    return svc.flows.get(key) === flow ? flow : undefined;
  }

  /** A segment from the client of a flow we hold: buffered until handover, relayed after. */
  clientSegment(flow: Flow, v: FrameView): void {
    flow.lastSeen = Date.now();
    if (flow.state === 'relay' || flow.state === 'closing') {
      this.relay.toGuest(flow, v);
      return;
    }
    const flags = v.flags;
    if (flags & TCP_RST) {
      this.teardown.dropFlow(flow, 'client-reset');
      return;
    }
    if (flags & TCP_SYN) return;
    flow.clientWindow = v.buf.readUInt16BE(v.tcpOff + 14);
    if (v.payloadLen > 0) {
      const end = seq.add(v.seq, v.payloadLen);
      // Only in-order bytes are kept (a retransmission may overlap what we have): the client resends the rest.
      if (seq.le(v.seq, flow.rcvNxt) && seq.lt(flow.rcvNxt, end) && !flow.fin) {
        const skip = seq.diff(flow.rcvNxt, v.seq);
        const n = this.ctx.budget.take(flow.buffered, v.payloadLen - skip);
        if (n > 0) {
          const start = v.payloadOff + skip;
          flow.chunks.push(Buffer.from(v.buf.subarray(start, start + n)));
          flow.buffered += n;
          flow.rcvNxt = seq.add(flow.rcvNxt, n);
          flow.svc.m.bytesBuffered.inc(n);
        }
      }
    }
    if (flags & TCP_FIN && !flow.fin && seq.add(v.seq, v.payloadLen) === flow.rcvNxt) {
      flow.fin = true;
      flow.rcvNxt = seq.add(flow.rcvNxt, 1);
    }
    // ACK every segment carrying data or FIN (also duplicates: the client must learn the window).
    if (v.payloadLen > 0 || flags & TCP_FIN) this.ackClient(flow);
  }

  private ackClient(flow: Flow): void {
    const s = this.ctx.wire.segToClient(flow.svc, flow.clientMac, flow.clientIp, flow.clientPort, flow.svcPort);
    s.seq = seq.add(flow.ourIsn, 1);
    s.ack = flow.rcvNxt;
    s.flags = TCP_ACK;
    s.window = this.ctx.budget.space(flow.buffered) >> flow.ourWs;
    this.ctx.wire.sendToClient(s);
  }
}
