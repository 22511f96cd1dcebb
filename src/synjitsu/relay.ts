import { errorMessage } from '../errors.js';
import type { MaskContext } from './context.js';
import { endpointKey, seq } from './flowtable.js';
import type { KernelRelay } from './kernel-relay.js';
import type { FrameView } from './pdu/frame.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, writeTcpFrame } from './pdu/tcp.js';
import type { Tuple } from './nft.js';
import type { Flow } from './state.js';
import type { Teardown } from './teardown.js';
import type { TxQueue } from './tx.js';
import { MAX_FRAME } from './wire.js';

/** MSS we advertise to clients: Ethernet MTU 1500. */
export const OUR_MSS = 1460;

// The client's connection began with our SYN cookie (ourIsn) and the guest's with its own ISN, so
// the guest's sequence space is the client's view shifted by a constant; the client's own numbers
// pass through unchanged (the guest was handed the client's ISN).

/** A guest sequence number as the client knows it. */
export function guestSeqToClient(guestSeq: number, guestIsn: number, ourIsn: number): number {
  return seq.add(guestSeq, ourIsn - guestIsn);
}

/** A client's ACK of our sequence space, as an ACK of the guest's. */
export function clientAckToGuest(clientAck: number, ourIsn: number, guestIsn: number): number {
  return seq.add(clientAck, guestIsn - ourIsn);
}

/** The guest's window field rescaled to the scale we agreed with the client (we offered ourWs). */
export function guestWindowToClient(field: number, guestWs: number, ourWs: number): number {
  const bytes = field * 2 ** Math.max(0, guestWs);
  return Math.min(0xffff, Math.floor(bytes / 2 ** ourWs));
}

/**
 * The client's window field as the guest must read it: scaled to bytes when the guest declined
 * window scaling the client offered, else raw (the guest was given the client's own factor).
 */
export function clientWindowToGuest(field: number, clientWs: number, guestWs: number): number {
  if (clientWs >= 0 && guestWs < 0) return Math.min(0xffff, field << clientWs);
  return field;
}

/**
 * After the nft drop of a flow moved into the kernel is gone, copies the daemon already had in its
 * ring may still be the only ones: they are passed on this much longer (a duplicate is harmless).
 */
const KERNEL_HANDOFF_GRACE_MS = 50;

/**
 * Relays a handed-over connection for its lifetime, translating each segment between the two
 * spaces — in the daemon, or in the kernel (kernel-relay.ts) once the flow has moved there.
 */
export class Relay {
  private kernelFailureLogged = false;

  constructor(
    private readonly ctx: MaskContext,
    private readonly teardown: Teardown,
  ) {}

  /**
   * Moves a flow's translation into the kernel: called once the guest has acknowledged everything
   * we buffered, so from here on both sides only speak for themselves. Stays in the daemon when
   * there is no kernel relay, no guest link to attach to, or the guest's MSS is below the one we
   * promised the client (only the daemon re-segments).
   */
  toKernel(flow: Flow): void {
    const kernel = this.ctx.kernelRelay;
    const link = flow.svc.linkName;
    if (!kernel || !link || flow.kernel !== 'off' || flow.state !== 'relay' || flow.guestMss < OUR_MSS) return;
    // Until the program runs on the link (usually attached at ready()), the daemon goes on relaying.
    kernel.attach(link).then(
      () => this.install(flow, kernel, link),
      (err: unknown) => this.kernelFailed(link, err),
    );
  }

  private install(flow: Flow, kernel: KernelRelay, link: string): void {
    const svc = flow.svc;
    if (flow.kernel !== 'off' || flow.state !== 'relay' || svc.linkName !== link || svc.flows.get(endpointKey(flow.clientIp, flow.clientPort)) !== flow) return;
    // What we queued for the guest is translated already: it leaves before the kernel translates too.
    this.ctx.wire.flush();
    const [toGuest, toClient] = flow.tuples() as [Tuple, Tuple];
    this.ctx.wholeRelayedFrames(true);
    try {
      kernel.set(toClient, { seqDelta: flow.ourIsn - flow.guestIsn, ackDelta: 0, shiftLeft: Math.max(0, flow.guestWs), shiftRight: flow.ourWs });
      kernel.set(toGuest, { seqDelta: 0, ackDelta: flow.guestIsn - flow.ourIsn, shiftLeft: flow.clientWs >= 0 && flow.guestWs < 0 ? flow.clientWs : 0, shiftRight: 0 });
    } catch (err) {
      kernel.delete(toGuest);
      kernel.delete(toClient);
      this.ctx.wholeRelayedFrames(false);
      this.kernelFailed(link, err);
      return;
    }
    flow.kernel = 'pending';
    this.ctx.metrics.kernelRelayed(flow.svc.m);
    this.ctx.relayFilter.remove(flow.tuples()).then(
      () => {
        const t = setTimeout(() => {
          flow.kernel = 'on';
          this.ctx.wholeRelayedFrames(false);
        }, KERNEL_HANDOFF_GRACE_MS);
        t.unref();
      },
      (err: unknown) => this.ctx.logger.warn('synjitsu: nft delete failed; the daemon keeps passing the flow on', { error: errorMessage(err) }),
    );
  }

  private kernelFailed(link: string, err: unknown): void {
    if (this.kernelFailureLogged) return;
    this.kernelFailureLogged = true;
    this.ctx.logger.warn('synjitsu: cannot relay in the kernel, relaying in the daemon', { link, error: errorMessage(err) });
  }

  /** Client -> guest: only the ACK field and the window change. */
  toGuest(flow: Flow, v: FrameView): void {
    const flags = v.flags;
    if (flags & TCP_SYN) return;
    const wire = this.ctx.wire;
    if (flow.kernel === 'off') {
      wire.segToGuest(flow);
      const ack = flags & TCP_ACK ? clientAckToGuest(v.ack, flow.ourIsn, flow.guestIsn) : 0;
      const win = clientWindowToGuest(v.buf.readUInt16BE(v.tcpOff + 14), flow.clientWs, flow.guestWs);
      this.emit(wire.guestTx(flow.svc), v, v.seq, ack, win, Math.min(flow.guestMss, OUR_MSS));
    } else if (flow.kernel === 'pending') {
      // The capture sees client frames before the guest link's egress: the kernel translates our copy there.
      wire.segToGuest(flow);
      this.emit(wire.guestTx(flow.svc), v, v.seq, v.ack, v.buf.readUInt16BE(v.tcpOff + 14), OUR_MSS);
    }
    if (v.payloadLen > 0) flow.svc.m.bytesToGuest.inc(v.payloadLen);
    if (flags & TCP_FIN) flow.clientFin = true;
    const next = seq.add(v.seq, v.payloadLen + (flags & TCP_FIN ? 1 : 0));
    if (seq.lt(flow.rcvNxt, next)) flow.rcvNxt = next;
    this.closeIfDone(flow, flags);
  }

  /**
   * Guest -> client: the SEQ field and the window change. A copy the kernel translated (the capture
   * sees guest frames after the guest link's ingress) is passed on as it is while the bridge still
   * drops the original, and only watched after that (an RST excepted).
   */
  toClient(flow: Flow, v: FrameView): void {
    const flags = v.flags;
    const wire = this.ctx.wire;
    let sq = v.seq;
    if (!v.kernelRelayed) {
      wire.segToClient(flow.svc, flow.clientMac, flow.clientIp, flow.clientPort, flow.svcPort);
      sq = guestSeqToClient(v.seq, flow.guestIsn, flow.ourIsn);
      const win = guestWindowToClient(v.buf.readUInt16BE(v.tcpOff + 14), flow.guestWs, flow.ourWs);
      this.emit(wire.clientTx(flow.clientMac, 0), v, sq, v.ack, win, flow.clientMss);
    } else if ((flow.kernel === 'pending' || flags & TCP_RST) && v.complete) {
      // A guest's RST is passed on even once the kernel relays: the bridge's RST guard may hold the original.
      wire.segToClient(flow.svc, flow.clientMac, flow.clientIp, flow.clientPort, flow.svcPort);
      this.emit(wire.clientTx(flow.clientMac, 0), v, sq, v.ack, v.buf.readUInt16BE(v.tcpOff + 14), flow.clientMss);
    }
    if (v.payloadLen > 0) flow.svc.m.bytesToClient.inc(v.payloadLen);
    if (flags & TCP_FIN) flow.guestFin = true;
    const next = seq.add(sq, v.payloadLen + (flags & TCP_FIN ? 1 : 0));
    if (flow.toClientNxt === 0 || seq.lt(flow.toClientNxt, next)) flow.toClientNxt = next;
    this.closeIfDone(flow, flags);
  }

  private closeIfDone(flow: Flow, flags: number): void {
    if (flags & TCP_RST || (flow.clientFin && flow.guestFin)) this.teardown.finish(flow);
  }

  /**
   * Writes one received segment back out, translated, as MSS-sized frames. Frames are rebuilt rather
   * than patched: captured frames may carry an unfinished (offloaded) checksum or be GSO super-frames
   * larger than the MTU, and no options need carrying (we never negotiate timestamps or SACK).
   */
  private emit(tx: TxQueue, v: FrameView, seqNo: number, ackNo: number, window: number, mss: number): void {
    const wire = this.ctx.wire;
    const s = wire.seg;
    s.ack = ackNo;
    s.window = window;
    const flags = v.flags & (TCP_ACK | TCP_FIN | TCP_PSH | TCP_RST);
    let sent = 0;
    do {
      const n = Math.min(mss, v.payloadLen - sent);
      const last = sent + n >= v.payloadLen;
      s.seq = seq.add(seqNo, sent);
      s.payload = n > 0 ? v.buf.subarray(v.payloadOff + sent, v.payloadOff + sent + n) : undefined;
      // FIN, PSH and RST belong to the segment's end only.
      s.flags = last ? flags : flags & TCP_ACK;
      const at = tx.reserve(MAX_FRAME);
      const len = writeTcpFrame(tx.buffer, at, s);
      wire.stamp(tx, at);
      tx.commit(len);
      sent += n;
    } while (sent < v.payloadLen);
    s.payload = undefined;
  }
}
