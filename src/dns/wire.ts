/**
 * The DNS header's flags word and the OPT record as bytes (RFC 1035 4.1.1, RFC 6891 6.1.2): the one
 * place that lays them out. The full codec (codec.ts), the hot-path parser (query.ts) and the
 * handler's steps (steps/) all read and write them through here.
 */
import { EDNS_DO, EDNS_UDP_SIZE, Flag, HEADER_SIZE, QType } from './constants.js';

const OPCODE_SHIFT = 11;
/** The opcode's 4 bits in the flags word. */
export const OPCODE_MASK = 0xf << OPCODE_SHIFT;
/** The header's 4 rcode bits (the upper 8 of an extended rcode travel in OPT). */
export const RCODE_MASK = 0xf;
/** Root owner (1), type, class (the payload size), TTL, rdlength: an OPT record without options. */
export const OPT_FIXED_SIZE = 11;

export function opcodeOf(flags: number): number {
  return (flags & OPCODE_MASK) >> OPCODE_SHIFT;
}

export function opcodeBits(opcode: number): number {
  return (opcode & 0xf) << OPCODE_SHIFT;
}

/** The flags word of the message in `buf` (at least a header long). */
export function flagsOf(buf: Uint8Array): number {
  return (buf[2]! << 8) | buf[3]!;
}

/** The header's rcode bits of the message in `buf`. */
export function rcodeOf(buf: Uint8Array): number {
  return buf[3]! & RCODE_MASK;
}

/**
 * The flags of a reply to a query whose flags are `queryFlags`: QR, the query's opcode, its RD and
 * CD echoed (RFC 1035 4.1.1, RFC 4035 3.2.2), `set` (AA, TC, RA, AD as the reply needs), and the
 * low 4 bits of `rcode`.
 */
export function replyFlags(queryFlags: number, set: number, rcode: number): number {
  return Flag.QR | (queryFlags & (OPCODE_MASK | Flag.RD | Flag.CD)) | set | (rcode & RCODE_MASK);
}

/** OPT TTL field: extended rcode (upper 8 bits), version, DO. */
export function optTtl(extendedRcode: number, version: number, dnssecOk: boolean): number {
  return (((extendedRcode & 0xff) << 24) | ((version & 0xff) << 16) | (dnssecOk ? EDNS_DO : 0)) >>> 0;
}

export function optVersion(ttl: number): number {
  return (ttl >>> 16) & 0xff;
}

export function optDnssecOk(ttl: number): boolean {
  return (ttl & EDNS_DO) !== 0;
}

export function optExtendedRcode(ttl: number): number {
  return (ttl >>> 24) & 0xff;
}

/**
 * Writes the fixed part of an OPT record at `at` (OPT_FIXED_SIZE bytes): root owner, type OPT,
 * `payload` in the class field, the TTL field, and `rdlength` (the options the caller writes next).
 */
export function writeOpt(out: Uint8Array, at: number, payload: number, ttl: number, rdlength: number): void {
  out[at] = 0;
  out[at + 1] = QType.OPT >> 8;
  out[at + 2] = QType.OPT & 0xff;
  out[at + 3] = (payload >> 8) & 0xff;
  out[at + 4] = payload & 0xff;
  out[at + 5] = ttl >>> 24;
  out[at + 6] = (ttl >>> 16) & 0xff;
  out[at + 7] = (ttl >>> 8) & 0xff;
  out[at + 8] = ttl & 0xff;
  out[at + 9] = (rdlength >> 8) & 0xff;
  out[at + 10] = rdlength & 0xff;
}

/**
 * A reply without records: header (ID, `flags`), the query's question (`msg` up to `questionEnd`),
 * and, when the query had EDNS, our OPT (payload EDNS_UDP_SIZE, the extended rcode's upper bits, DO
 * echoed).
 */
export function questionOnlyReply(msg: Uint8Array, questionEnd: number, id: number, flags: number, rcode: number, edns: boolean, dnssecOk: boolean): Buffer {
  const out = Buffer.allocUnsafe(questionEnd + (edns ? OPT_FIXED_SIZE : 0));
  out[0] = id >> 8;
  out[1] = id & 0xff;
  out[2] = flags >> 8;
  out[3] = flags & 0xff;
  out[4] = 0;
  out[5] = 1; // qdcount
  out[6] = out[7] = out[8] = out[9] = out[10] = 0; // ancount, nscount, arcount (high byte)
  out[11] = edns ? 1 : 0;
  out.set(msg.subarray(HEADER_SIZE, questionEnd), HEADER_SIZE);
  if (edns) writeOpt(out, questionEnd, EDNS_UDP_SIZE, optTtl(rcode >> 4, 0, dnssecOk), 0);
  return out;
}

/** A bare header replying to `msg` (ID kept, no sections): for queries whose question cannot be trusted. */
export function headerOnlyReply(msg: Uint8Array, flags: number): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  out[2] = flags >> 8;
  out[3] = flags & 0xff;
  return out;
}
