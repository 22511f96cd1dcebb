import type { MaskStrategy } from '../masking/registry.js';
import { ARP_REQUEST, arp, writeArpReply, writeArpRequest } from './pdu/arp.js';
import type { FrameView } from './pdu/frame.js';
import type { Phase, Service } from './state.js';
import type { TxQueue } from './tx.js';
import type { Wire } from './wire.js';

/**
 * A watched service's IP is answered so cached-DNS clients reach us (summon-on-SYN); a booting one
 * only while we hold its connections; a ready guest answers for itself.
 */
export function answersArp(phase: Phase, strategy: MaskStrategy): boolean {
  return phase !== 'ready' && strategy.answersArp[phase];
}

/** The service the ARP request in `v` is to be answered for, if any. */
export function arpTarget(v: FrameView, byIp: ReadonlyMap<number, Service>): Service | undefined {
  const b = v.buf;
  const off = v.off;
  if (!arp.isIpv4OverEthernet(b, off, v.len) || arp.op(b, off) !== ARP_REQUEST) return undefined;
  const svc = byIp.get(arp.targetIp(b, off));
  if (!svc || !answersArp(svc.phase, svc.strategy)) return undefined;
  const sender = arp.senderIp(b, off);
  // Never answer the guest itself (its own probes and gratuitous ARPs would see a conflict).
  if (sender === 0 || sender === svc.ip || b.compare(svc.mac, 0, 6, off + 22, off + 28) === 0) return undefined;
  return svc;
}

export function answerArp(v: FrameView, byIp: ReadonlyMap<number, Service>, wire: Wire): void {
  const svc = arpTarget(v, byIp);
  if (!svc) return;
  const tx = wire.clientTx(v.buf, v.off + 22);
  const at = tx.reserve(64);
  const len = writeArpReply(tx.buffer, at, v.buf, v.off, svc.ip, svc.mac);
  wire.stamp(tx, at);
  tx.commit(len);
  svc.m.arpReplies.inc();
}

/**
 * Tells the guest a client's MAC with an ARP request from that client, so the guest's first answer
 * does not wait on its own ARP (whose first try a just-booted guest often loses: then 1 s passes).
 * Once per client per readiness period, and at most `max` clients.
 */
export function primeNeighbour(svc: Service, tx: TxQueue, clientMac: Uint8Array, clientIp: number, max: number): void {
  if (svc.primed.has(clientIp) || svc.primed.size >= max) return;
  svc.primed.add(clientIp);
  const at = tx.reserve(64);
  tx.commit(writeArpRequest(tx.buffer, at, svc.guestMac, clientMac, clientIp, svc.ip));
}
