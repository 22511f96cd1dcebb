/**
 * Where a query came from, in the form the native UDP socket already has it: a raw Linux
 * `sockaddr_in` / `sockaddr_in6`. Access control (`AddressSet`) and rate limiting (`rate-table.ts`)
 * read its address bytes in place, so the hot path never formats or parses an address string.
 */
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { JitsuError } from '../errors.js';
import { writeIpv4, writeIpv6 } from './address.js';

/**
 * The sender of one query: a sockaddr at `offset` in `bytes`. The server reuses the object (and the
 * native path its memory) for the next datagram, so it is valid only during `handle()`; copy it
 * (`copySource`) to keep it.
 */
export interface QuerySource {
  bytes: Uint8Array;
  offset: number;
  /**
   * When the query arrived (performance.now() ms; one reading per received batch or TCP chunk):
   * the clock of rate limits, read once per wake-up instead of once per answer.
   */
  receivedAt: number;
}

/** Bytes a sockaddr_in6 (the larger of the two) takes; the native socket's stride is at least this. */
export const SOCKADDR_SIZE = 28;
const AF_INET = 2;
const AF_INET6 = 10;
/** Where the address starts inside each sockaddr. */
const V4_AT = 4;
const V6_AT = 8;

/**
 * Offset (in `s.bytes`) of the 4 IPv4 bytes, or -1 for an IPv6 source. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) counts as IPv4, so one prefix rule covers a client however the socket saw it.
 */
export function ipv4At(s: QuerySource): number {
  const b = s.bytes;
  const o = s.offset;
  // sa_family is host order (little-endian here); AF_INET and AF_INET6 both fit the low byte.
  if (b[o] === AF_INET) return o + V4_AT;
  const a = o + V6_AT;
  if (b[a] === 0 && b[a + 1] === 0 && b[a + 2] === 0 && b[a + 3] === 0 && b[a + 4] === 0 && b[a + 5] === 0 && b[a + 6] === 0 && b[a + 7] === 0 && b[a + 8] === 0 && b[a + 9] === 0 && b[a + 10] === 0xff && b[a + 11] === 0xff) {
    return a + 12;
  }
  return -1;
}

/** Offset of the 16 IPv6 bytes (only meaningful when `ipv4At(s) === -1`). */
export function ipv6At(s: QuerySource): number {
  return s.offset + V6_AT;
}

/** A sockaddr for an address given as text (TCP peers, the dgram fallback, tests). */
export function sourceFromText(address: string): QuerySource {
  const bytes = new Uint8Array(SOCKADDR_SIZE);
  // Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d; both forms end up equal.
  const family = isIP(address);
  if (family === 4) {
    bytes[0] = AF_INET;
    writeIpv4(address, bytes, V4_AT);
  } else if (family === 6) {
    bytes[0] = AF_INET6;
    writeIpv6(address.replace(/%.*$/, ''), bytes, V6_AT);
  } else throw new JitsuError('CONFIG_INVALID', `"${address}" is not an IPv4 or IPv6 address`);
  return { bytes, offset: 0, receivedAt: performance.now() };
}

/** A copy that outlives the call (a query answered later). */
export function copySource(s: QuerySource): QuerySource {
  return { bytes: s.bytes.slice(s.offset, s.offset + SOCKADDR_SIZE), offset: 0, receivedAt: s.receivedAt };
}

interface V6Prefix {
  words: Uint32Array;
  masks: Uint32Array;
}

/**
 * A fixed set of CIDR prefixes, parsed once; `contains()` is a few integer compares per prefix
 * (the sets are small: loopback, a handful of service subnets, what --allow-forward adds).
 */
export class AddressSet {
  private readonly v4Nets: Uint32Array;
  private readonly v4Masks: Uint32Array;
  private readonly v6: V6Prefix[] = [];

  /** `cidrs`: `ADDRESS/PREFIX` or a bare address (a single host); host bits are ignored. */
  constructor(readonly cidrs: readonly string[]) {
    const nets: number[] = [];
    const masks: number[] = [];
    for (const cidr of cidrs) {
      const slash = cidr.indexOf('/');
      const address = slash < 0 ? cidr : cidr.slice(0, slash);
      const family = isIP(address);
      const bits = slash < 0 ? (family === 4 ? 32 : 128) : Number(cidr.slice(slash + 1));
      if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
        throw new JitsuError('CONFIG_INVALID', `"${cidr}" is not ADDRESS/PREFIX (e.g. 192.0.2.0/24 or 2001:db8::/56)`, { cidr });
      }
      const s = sourceFromText(address);
      const at = ipv4At(s);
      if (at >= 0) {
        const mask = prefixMask(family === 4 ? bits : Math.max(0, bits - 96));
        nets.push((readU32(s.bytes, at) & mask) >>> 0);
        masks.push(mask);
        continue;
      }
      const words = new Uint32Array(4);
      const wordMasks = new Uint32Array(4);
      for (let w = 0; w < 4; w++) {
        wordMasks[w] = prefixMask(Math.min(32, Math.max(0, bits - 32 * w)));
        words[w] = (readU32(s.bytes, V6_AT + 4 * w) & wordMasks[w]!) >>> 0;
      }
      this.v6.push({ words, masks: wordMasks });
    }
    this.v4Nets = Uint32Array.from(nets);
    this.v4Masks = Uint32Array.from(masks);
  }

  contains(s: QuerySource): boolean {
    const at = ipv4At(s);
    if (at >= 0) {
      const ip = readU32(s.bytes, at);
      for (let i = 0; i < this.v4Nets.length; i++) if (((ip & this.v4Masks[i]!) >>> 0) === this.v4Nets[i]) return true;
      return false;
    }
    const a = ipv6At(s);
    const b = s.bytes;
    next: for (const p of this.v6) {
      for (let w = 0; w < 4; w++) if (((readU32(b, a + 4 * w) & p.masks[w]!) >>> 0) !== p.words[w]) continue next;
      return true;
    }
    return false;
  }
}

/** 127.0.0.0/8 and ::1: sources no off-host packet can carry (the kernel drops them as martians). */
export const LOOPBACK = new AddressSet(['127.0.0.0/8', '::1/128']);

function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Big-endian u32 at `at`. */
export function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
