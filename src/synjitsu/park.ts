import { primeNeighbour } from './arp.js';
import type { MaskContext } from './context.js';
import { seq, type FlowBudget, type RefuseReason } from './flowtable.js';
import type { SynjitsuMetrics } from './metrics.js';
import type { FrameView } from './pdu/frame.js';
import { setTcpChecksum, TCP_RST } from './pdu/tcp.js';
import type { Parked, Service } from './state.js';
import type { TxQueue } from './tx.js';

/** Parked SYNs replayed per event-loop turn: a veth's backlog (netdev_max_backlog) holds ~1000 frames. */
const REPLAY_BATCH = 128;
/**
 * Intervals between resends of replayed SYNs the guest has not answered with a SYN-ACK: also covers
 * a guest whose network is up before its service listens (it answers RST, which the RST guard keeps
 * from the client, and a later resend finds the listener). Ends inside LATE_HANDSHAKE_MS.
 */
const PARK_RESEND_MS: readonly number[] = [30, 470, 500, 500, 500, 500];

export type ParkOutcome = 'parked' | 'duplicate' | 'forgotten' | 'ignored' | RefuseReason;

/** Holds a client's SYN for a booting service (strategy `park`), or forgets it if the client gave up. */
export function parkSegment(svc: Service, v: FrameView, key: number, isSyn: boolean, budget: FlowBudget, metrics: SynjitsuMetrics): ParkOutcome {
  if (!isSyn) {
    // The client gave up on a parked SYN: forget it so it is not replayed.
    if (v.flags & TCP_RST && svc.parked.delete(key)) {
      budget.releaseParked();
      return 'forgotten';
    }
    return 'ignored';
  }
  const existing = svc.parked.get(key);
  if (existing && existing.isn === v.seq) {
    svc.m.duplicateSyns.inc();
    return 'duplicate';
  }
  // A new ISN from a known endpoint replaces its SYN without taking another slot.
  if (!existing) {
    const refused = budget.admitParked(svc.parked.size);
    if (refused) {
      metrics.refused(refused);
      return refused;
    }
  }
  const len = v.ipFrameLength;
  const frame = Buffer.allocUnsafe(len);
  v.buf.copy(frame, 0, v.off, v.off + len);
  // The captured checksum may be unfinished (checksum offload); the guest will verify it.
  setTcpChecksum(frame, v.tcpOff - v.off, v.tcpLen, v.srcIp, v.dstIp);
  svc.parked.set(key, { frame, isn: v.seq });
  svc.m.parked.inc();
  return 'parked';
}

/** Replays parked SYNs into the guest's link once it is up, and refuses them if the boot fails. */
export class Parker {
  constructor(private readonly ctx: MaskContext) {}

  async replay(svc: Service): Promise<void> {
    const { budget, limits, metrics } = this.ctx;
    const tx = svc.guestTx ?? this.ctx.wire.bridgeTx;
    const entries = [...svc.parked];
    budget.releaseParked(svc.parked.size);
    svc.parked.clear();
    for (let i = 0; i < entries.length; i += REPLAY_BATCH) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const end = Math.min(entries.length, i + REPLAY_BATCH);
      for (let j = i; j < end; j++) {
        const [key, p] = entries[j]!;
        primeNeighbour(svc, tx, p.frame.subarray(6, 12), p.frame.readUInt32BE(26), limits.maxParkedPerService);
        send(tx, p);
        if (svc.replayed.size < limits.maxParkedPerService) svc.replayed.set(key, p);
      }
      tx.flush();
      metrics.handedOver(svc.m, end - i);
    }
    this.resendReplayed(svc, 0);
  }

  /** Resends replayed SYNs the guest has not answered yet, on PARK_RESEND_MS; then forgets them. */
  private resendReplayed(svc: Service, attempt: number): void {
    if (svc.replayed.size === 0) return;
    if (attempt >= PARK_RESEND_MS.length || svc.phase !== 'ready') {
      // Past this the client's own SYN retransmissions reach the guest directly.
      svc.replayed.clear();
      this.ctx.refilter();
      return;
    }
    const timer = setTimeout(() => {
      if (svc.phase !== 'ready' || svc.replayed.size === 0) return;
      const tx = svc.guestTx ?? this.ctx.wire.bridgeTx;
      this.ctx.logger.debug('synjitsu resending replayed SYNs', { service: svc.target.service, count: svc.replayed.size, attempt });
      for (const p of svc.replayed.values()) send(tx, p);
      tx.flush();
      this.resendReplayed(svc, attempt + 1);
    }, PARK_RESEND_MS[attempt]);
    timer.unref();
  }

  /** A parked SYN gets RST+ACK: the client's connect() fails at once (ECONNREFUSED) instead of hanging. */
  refuseAll(svc: Service, reason: string): void {
    if (svc.parked.size === 0) return;
    for (const p of svc.parked.values()) {
      const f = p.frame;
      const t = 14 + (f[14]! & 0x0f) * 4;
      this.ctx.wire.sendRst(svc, f.subarray(6, 12), f.readUInt32BE(26), f.readUInt16BE(t), f.readUInt16BE(t + 2), 0, seq.add(p.isn, 1));
      this.ctx.metrics.reset(svc.target.service, reason);
    }
    this.ctx.budget.releaseParked(svc.parked.size);
    svc.parked.clear();
  }
}

function send(tx: TxQueue, p: Parked): void {
  const at = tx.reserve(p.frame.length);
  p.frame.copy(tx.buffer, at);
  tx.commit(p.frame.length);
}
