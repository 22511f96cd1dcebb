import { errorMessage } from '../errors.js';
import type { MaskContext } from './context.js';
import { endpointKey } from './flowtable.js';
import { LATE_HANDSHAKE_MS } from './guard.js';
import type { Handover } from './handover.js';
import type { Handshake } from './handshake.js';
import type { SummonOnSyn } from './masker.js';
import { parkSegment } from './park.js';
import type { FrameView } from './pdu/frame.js';
import { formatIpv4 } from './pdu/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './pdu/tcp.js';
import type { Service } from './state.js';

export interface DispatchDeps {
  ctx: MaskContext;
  byIp: ReadonlyMap<number, Service>;
  onSummon: SummonOnSyn;
  /** The service starts booting under our mask (summon-on-SYN does this before the lifecycle's booting()). */
  startMasking(svc: Service): void;
  handshake: Handshake;
  handover: Handover;
}

/** Routes each captured TCP segment to the strategy of the service it is to or from. */
export class TcpDispatch {
  constructor(private readonly d: DispatchDeps) {}

  onTcp(v: FrameView): void {
    const toSvc = this.d.byIp.get(v.dstIp);
    if (toSvc) {
      // Only the guest's frames are cut by the capture (kernel-translated); a client's never should be.
      if (!v.complete) {
        this.d.ctx.metrics.counts.truncated++;
        return;
      }
      this.fromClient(toSvc, v);
      return;
    }
    const fromSvc = this.d.byIp.get(v.srcIp);
    if (!fromSvc) return;
    if (fromSvc.replayed.size > 0 && (v.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) {
      // The guest answered a replayed SYN: stop resending it.
      fromSvc.replayed.delete(endpointKey(v.dstIp, v.dstPort));
    }
    if (fromSvc.flows.size > 0) this.d.handover.fromGuest(fromSvc, v);
  }

  private fromClient(svc: Service, v: FrameView): void {
    const flags = v.flags;
    const isSyn = (flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
    if (isSyn) this.d.ctx.metrics.counts.synsSeen++;
    const handling = svc.strategy.clientSegments;
    if (svc.phase === 'watched') {
      if (!svc.strategy.answersArp.watched) return; // we do not speak for this IP
      if (!isSyn) {
        // A segment of a connection to a service that is not running (it died, or was stopped):
        // answer as a closed port would, so the client learns now instead of retransmitting into
        // nothing (RFC 9293 3.10.7.1; the RST's sequence number is the one the client expects).
        if ((flags & TCP_RST) === 0) this.refuse(svc, v);
        return;
      }
      this.summon(svc, v);
      if (!svc.strategy.holdsConnections) {
        svc.phase = 'booting';
        return;
      }
      this.d.startMasking(svc);
    }
    const key = endpointKey(v.srcIp, v.srcPort);
    const flow = svc.flows.get(key);
    if (flow && flow.svcPort === v.dstPort) {
      this.d.handshake.clientSegment(flow, v);
      return;
    }
    const isAck = (flags & (TCP_ACK | TCP_SYN | TCP_RST)) === TCP_ACK;
    if (svc.phase === 'ready') {
      // A handshake we answered just before the guest came up completes now: hand it over at once.
      if (handling === 'handshake' && isAck && Date.now() - svc.readyAt < LATE_HANDSHAKE_MS) {
        const late = this.d.handshake.cookieAck(svc, v, key, false);
        if (late) void this.d.handover.late(late);
      }
      return;
    }
    if (svc.phase !== 'booting') return;
    if (handling === 'park') parkSegment(svc, v, key, isSyn, this.d.ctx.budget, this.d.ctx.metrics);
    else if (handling === 'handshake') {
      if (isSyn) this.d.handshake.synAck(svc, v);
      else if (isAck) this.d.handshake.cookieAck(svc, v, key);
    }
  }

  private refuse(svc: Service, v: FrameView): void {
    const fin = v.flags & TCP_FIN ? 1 : 0;
    const seqNo = v.flags & TCP_ACK ? v.ack : 0;
    this.d.ctx.wire.sendRst(svc, v.buf.subarray(v.off + 6, v.off + 12), v.srcIp, v.srcPort, v.dstPort, seqNo, (v.seq + v.payloadLen + fin) >>> 0);
    this.d.ctx.metrics.reset(svc.target.service, 'not-running');
  }

  /** A SYN to a stopped service's IP starts it, as a DNS query would (clients cache DNS answers). */
  private summon(svc: Service, v: FrameView): void {
    if (svc.summoned) return;
    svc.summoned = true;
    svc.m.summons.inc();
    this.d.ctx.logger.info('synjitsu summon on SYN', { service: svc.target.service, client: formatIpv4(v.srcIp) });
    try {
      this.d.onSummon(svc.target.service);
    } catch (err) {
      this.d.ctx.logger.error('synjitsu summon callback failed', { service: svc.target.service, error: errorMessage(err) });
    }
  }
}
