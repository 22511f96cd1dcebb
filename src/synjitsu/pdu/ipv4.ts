import { fold, sum16 } from './checksum.js';

/** IPv4 addresses travel as unsigned 32-bit numbers on hot paths; strings only at the edges. */
export const IP_PROTO_TCP = 6;
export const IPV4_HEADER = 20;

export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new RangeError(`bad IPv4 address "${text}": expected dotted quad like 10.0.0.1`);
  }
  return ((Number(parts[0]) << 24) | (Number(parts[1]) << 16) | (Number(parts[2]) << 8) | Number(parts[3])) >>> 0;
}

export function formatIpv4(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Zero-copy accessors over an IPv4 header at `off`. */
export const ipv4 = {
  version: (b: Buffer, off: number): number => b[off]! >> 4,
  headerLength: (b: Buffer, off: number): number => (b[off]! & 0x0f) * 4,
  totalLength: (b: Buffer, off: number): number => b.readUInt16BE(off + 2),
  /** True when this is a fragment (MF set or offset non-zero); we never reassemble. */
  isFragment: (b: Buffer, off: number): boolean => (b.readUInt16BE(off + 6) & 0x3fff) !== 0,
  protocol: (b: Buffer, off: number): number => b[off + 9]!,
  src: (b: Buffer, off: number): number => b.readUInt32BE(off + 12),
  dst: (b: Buffer, off: number): number => b.readUInt32BE(off + 16),
};

let ipId = (Math.random() * 0xffff) | 0;

/** Writes a 20-byte IPv4 header (DF, TTL 64) with its checksum; returns the payload offset. */
export function writeIpv4(out: Buffer, off: number, src: number, dst: number, protocol: number, payloadLength: number): number {
  out[off] = 0x45;
  out[off + 1] = 0;
  out.writeUInt16BE(IPV4_HEADER + payloadLength, off + 2);
  ipId = (ipId + 1) & 0xffff;
  out.writeUInt16BE(ipId, off + 4);
  out.writeUInt16BE(0x4000, off + 6);
  out[off + 8] = 64;
  out[off + 9] = protocol;
  out.writeUInt16BE(0, off + 10);
  out.writeUInt32BE(src, off + 12);
  out.writeUInt32BE(dst, off + 16);
  out.writeUInt16BE(fold(sum16(out, off, off + IPV4_HEADER)), off + 10);
  return off + IPV4_HEADER;
}

/** True when the header checksum is valid. */
export function ipv4ChecksumOk(b: Buffer, off: number): boolean {
  return fold(sum16(b, off, off + ipv4.headerLength(b, off))) === 0;
}
