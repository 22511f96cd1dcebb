import { fold, sum16 } from './checksum.js';
import { ETH_HEADER, ETHERTYPE_IPV4, writeEthernet } from './ethernet.js';
import { IP_PROTO_TCP, IPV4_HEADER, writeIpv4 } from './ipv4.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_HEADER = 20;

/** Zero-copy accessors over a TCP header at `off`. */
export const tcp = {
  srcPort: (b: Buffer, off: number): number => b.readUInt16BE(off),
  dstPort: (b: Buffer, off: number): number => b.readUInt16BE(off + 2),
  seq: (b: Buffer, off: number): number => b.readUInt32BE(off + 4),
  ack: (b: Buffer, off: number): number => b.readUInt32BE(off + 8),
  headerLength: (b: Buffer, off: number): number => (b[off + 12]! >> 4) * 4,
  flags: (b: Buffer, off: number): number => b[off + 13]! & 0x3f,
  window: (b: Buffer, off: number): number => b.readUInt16BE(off + 14),
  checksum: (b: Buffer, off: number): number => b.readUInt16BE(off + 16),
};

/** Options we understand. -1 / false mean "absent". Reused by callers to avoid allocation. */
export class TcpOptions {
  mss = -1;
  wscale = -1;
  sackPermitted = false;
  hasTimestamps = false;
  tsVal = 0;
  tsEcr = 0;
  reset(): this {
    this.mss = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.hasTimestamps = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    return this;
  }
}

/** Parses the options of the TCP header at `off` into `out`; malformed options stop parsing (never throw). */
export function parseTcpOptions(b: Buffer, off: number, out: TcpOptions): TcpOptions {
  out.reset();
  const end = off + tcp.headerLength(b, off);
  let p = off + TCP_HEADER;
  while (p < end) {
    const kind = b[p]!;
    if (kind === 0) break;
    if (kind === 1) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const len = b[p + 1]!;
    if (len < 2 || p + len > end) break;
    if (kind === 2 && len === 4) out.mss = b.readUInt16BE(p + 2);
    else if (kind === 3 && len === 3) out.wscale = Math.min(b[p + 2]!, 14);
    else if (kind === 4 && len === 2) out.sackPermitted = true;
    else if (kind === 8 && len === 10) {
      out.hasTimestamps = true;
      out.tsVal = b.readUInt32BE(p + 2);
      out.tsEcr = b.readUInt32BE(p + 6);
    }
    p += len;
  }
  return out;
}

/** Checksum over pseudo-header + TCP header + payload (checksum field included as stored). */
export function tcpChecksumSum(b: Buffer, tcpOff: number, tcpLength: number, src: number, dst: number): number {
  let sum = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + IP_PROTO_TCP + tcpLength;
  sum = sum16(b, tcpOff, tcpOff + tcpLength, sum);
  return sum;
}

export function tcpChecksumOk(b: Buffer, tcpOff: number, tcpLength: number, src: number, dst: number): boolean {
  return fold(tcpChecksumSum(b, tcpOff, tcpLength, src, dst)) === 0;
}

/** Recomputes and stores the TCP checksum. */
export function setTcpChecksum(b: Buffer, tcpOff: number, tcpLength: number, src: number, dst: number): void {
  b.writeUInt16BE(0, tcpOff + 16);
  b.writeUInt16BE(fold(tcpChecksumSum(b, tcpOff, tcpLength, src, dst)), tcpOff + 16);
}

/** Everything needed to write one TCP/IPv4/Ethernet frame. Callers keep one and mutate it. */
export interface SegmentSpec {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Options to put in a SYN / SYN-ACK; -1 omits. */
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  payload?: Uint8Array;
}

/** Writes a full frame for `s` at `off`; returns its length. No timestamps (see DESIGN §4 handshake). */
export function writeTcpFrame(out: Buffer, off: number, s: SegmentSpec): number {
  let optLen = 0;
  const mss = s.mss ?? -1;
  const wscale = s.wscale ?? -1;
  if (mss >= 0) optLen += 4;
  if (wscale >= 0) optLen += 4; // NOP + 3-byte option
  if (s.sackPermitted) optLen += 4; // NOP NOP + 2-byte option
  const payloadLen = s.payload ? s.payload.length : 0;
  const tcpLen = TCP_HEADER + optLen + payloadLen;
  const ipOff = writeEthernet(out, off, s.dstMac, s.srcMac, ETHERTYPE_IPV4);
  const t = writeIpv4(out, ipOff, s.srcIp, s.dstIp, IP_PROTO_TCP, tcpLen);
  out.writeUInt16BE(s.srcPort, t);
  out.writeUInt16BE(s.dstPort, t + 2);
  out.writeUInt32BE(s.seq >>> 0, t + 4);
  out.writeUInt32BE(s.ack >>> 0, t + 8);
  out[t + 12] = ((TCP_HEADER + optLen) / 4) << 4;
  out[t + 13] = s.flags;
  out.writeUInt16BE(Math.min(0xffff, Math.max(0, s.window)), t + 14);
  out.writeUInt32BE(0, t + 16); // checksum + urgent pointer
  let p = t + TCP_HEADER;
  if (mss >= 0) {
    out[p] = 2;
    out[p + 1] = 4;
    out.writeUInt16BE(mss, p + 2);
    p += 4;
  }
  if (wscale >= 0) {
    out[p] = 1;
    out[p + 1] = 3;
    out[p + 2] = 3;
    out[p + 3] = wscale;
    p += 4;
  }
  if (s.sackPermitted) {
    out[p] = 1;
    out[p + 1] = 1;
    out[p + 2] = 4;
    out[p + 3] = 2;
    p += 4;
  }
  if (s.payload) out.set(s.payload, p);
  setTcpChecksum(out, t, tcpLen, s.srcIp, s.dstIp);
  return ETH_HEADER + IPV4_HEADER + tcpLen;
}
