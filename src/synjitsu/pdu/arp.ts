import { BROADCAST_MAC, ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4, writeEthernet } from './ethernet.js';

/** ARP for IPv4 over Ethernet (RFC 826): the 28-byte body after the Ethernet header. */
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_FRAME = ETH_HEADER + 28;

export const arp = {
  /** True for an Ethernet/IPv4 ARP body of sane length. */
  isIpv4OverEthernet: (b: Buffer, off: number, len: number): boolean =>
    len >= ARP_FRAME && b.readUInt16BE(off + 14) === 1 && b.readUInt16BE(off + 16) === ETHERTYPE_IPV4 && b[off + 18] === 6 && b[off + 19] === 4,
  op: (b: Buffer, off: number): number => b.readUInt16BE(off + 20),
  senderMacOffset: (off: number): number => off + 22,
  senderIp: (b: Buffer, off: number): number => b.readUInt32BE(off + 28),
  targetIp: (b: Buffer, off: number): number => b.readUInt32BE(off + 38),
};

/**
 * Writes an ARP reply "ip is-at mac" to the requester (whose MAC and IP are in the request at reqOff).
 * Returns the frame length.
 */
export function writeArpReply(out: Buffer, off: number, request: Buffer, reqOff: number, ip: number, mac: Uint8Array): number {
  const requesterMac = request.subarray(reqOff + 22, reqOff + 28);
  return writeArp(out, off, ARP_REPLY, requesterMac, mac, ip, requesterMac, arp.senderIp(request, reqOff));
}

/** Writes a gratuitous ARP request announcing ip is-at mac (broadcast); returns the frame length. */
export function writeGratuitousArp(out: Buffer, off: number, ip: number, mac: Uint8Array): number {
  return writeArpRequest(out, off, BROADCAST_MAC, mac, ip, ip);
}

/**
 * Writes an ARP request "who-has targetIp tell senderIp (senderMac)" sent to `dstMac` (unicast or
 * broadcast). A host that owns targetIp learns the sender's MAC from it (RFC 826), so it can answer
 * the sender without an ARP round trip of its own.
 */
export function writeArpRequest(out: Buffer, off: number, dstMac: Uint8Array, senderMac: Uint8Array, senderIp: number, targetIp: number): number {
  return writeArp(out, off, ARP_REQUEST, dstMac, senderMac, senderIp, undefined, targetIp);
}

/** A request's target MAC is unknown: zeros. */
function writeArp(out: Buffer, off: number, op: number, dstMac: Uint8Array, senderMac: Uint8Array, senderIp: number, targetMac: Uint8Array | undefined, targetIp: number): number {
  const p = writeEthernet(out, off, dstMac, senderMac, ETHERTYPE_ARP);
  out.writeUInt16BE(1, p);
  out.writeUInt16BE(ETHERTYPE_IPV4, p + 2);
  out[p + 4] = 6;
  out[p + 5] = 4;
  out.writeUInt16BE(op, p + 6);
  out.set(senderMac.subarray(0, 6), p + 8);
  out.writeUInt32BE(senderIp, p + 14);
  if (targetMac) out.set(targetMac.subarray(0, 6), p + 18);
  else out.fill(0, p + 18, p + 24);
  out.writeUInt32BE(targetIp, p + 24);
  return p + 28 - off;
}
