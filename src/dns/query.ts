/**
 * Hot-path query parser: header, the first question and the OPT record, written into a
 * caller-owned object that is reused for every query (no allocation).
 * Anything unusual (compressed question name, non-ASCII bytes) is left to the full decoder.
 */
import { HEADER_SIZE, MAX_NAME_WIRE_LENGTH, QType } from './constants.js';
import { malformed } from './codec.js';
import { flagsOf, optDnssecOk, optVersion } from './wire.js';

export class ParsedQuery {
  id = 0;
  flags = 0;
  qdcount = 0;
  ancount = 0;
  nscount = 0;
  arcount = 0;
  /** Offset just after the question name (the name starts at 12). */
  nameEnd = 0;
  qtype = 0;
  qclass = 0;
  /** Offset just after the first question. */
  questionEnd = 0;
  /**
   * 32-bit FNV-1a hash of the question name's wire bytes, ASCII-lowercased, so every 0x20
   * variant of a name hashes alike. A cache key (collisions are resolved by comparing bytes).
   */
  hash = 0;
  /** False when the name holds bytes >= 0x80: such names bypass the answer cache. */
  cacheable = false;
  hasEdns = false;
  ednsPayload = 0;
  ednsVersion = 0;
  ednsDo = false;
  /** More than one OPT record (a FORMERR). */
  ednsDuplicate = false;
}

function skipName(buf: Uint8Array, pos: number): number {
  for (let hops = 0; hops < 128; hops++) {
    if (pos >= buf.length) throw malformed('name runs past the end of the message', { offset: pos });
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 2 > buf.length) throw malformed('truncated compression pointer', { offset: pos });
      return pos + 2;
    }
    if ((len & 0xc0) !== 0) throw malformed('unsupported label type', { offset: pos });
    pos += 1 + len;
  }
  throw malformed('name has too many labels', { offset: pos });
}

/** Fills `q` from `buf`; throws DNS_MALFORMED. The caller has checked buf.length >= 12. */
export function parseQuery(buf: Buffer, q: ParsedQuery): void {
  q.id = (buf[0]! << 8) | buf[1]!;
  q.flags = flagsOf(buf);
  q.qdcount = (buf[4]! << 8) | buf[5]!;
  q.ancount = (buf[6]! << 8) | buf[7]!;
  q.nscount = (buf[8]! << 8) | buf[9]!;
  q.arcount = (buf[10]! << 8) | buf[11]!;
  q.hasEdns = false;
  q.ednsDuplicate = false;
  q.ednsPayload = 0;
  q.ednsVersion = 0;
  q.ednsDo = false;

  let pos = HEADER_SIZE;
  let high = false;
  let hash = 0x811c9dc5;
  const n = buf.length;
  for (;;) {
    if (pos >= n) throw malformed('question name runs past the end of the message', { offset: pos });
    const len = buf[pos]!;
    if (len === 0) break;
    if (len > 63) throw malformed(len >= 0xc0 ? 'compressed first question name' : 'label longer than 63 octets', { offset: pos });
    const end = pos + 1 + len;
    if (end > n) throw malformed('label runs past the end of the message', { offset: pos });
    hash = Math.imul(hash ^ len, 0x01000193);
    for (let i = pos + 1; i < end; i++) {
      let c = buf[i]!;
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      else if (c >= 0x80) high = true;
      hash = Math.imul(hash ^ c, 0x01000193);
    }
    pos = end;
    if (pos - HEADER_SIZE + 1 > MAX_NAME_WIRE_LENGTH) throw malformed('name longer than 255 octets', { offset: HEADER_SIZE });
  }
  q.nameEnd = pos + 1;
  if (q.nameEnd + 4 > n) throw malformed('question runs past the end of the message', { offset: q.nameEnd });
  q.qtype = (buf[q.nameEnd]! << 8) | buf[q.nameEnd + 1]!;
  q.qclass = (buf[q.nameEnd + 2]! << 8) | buf[q.nameEnd + 3]!;
  q.questionEnd = q.nameEnd + 4;
  q.hash = hash >>> 0;
  q.cacheable = !high;

  // Remaining questions, answers and authorities are skipped; OPT is looked for in additionals.
  pos = q.questionEnd;
  for (let i = 1; i < q.qdcount; i++) {
    pos = skipName(buf, pos) + 4;
    if (pos > n) throw malformed('question runs past the end of the message', { offset: pos });
  }
  const records = q.ancount + q.nscount + q.arcount;
  const additionalFrom = q.ancount + q.nscount;
  for (let i = 0; i < records; i++) {
    const start = pos;
    pos = skipName(buf, pos);
    if (pos + 10 > n) throw malformed('record header runs past the end of the message', { offset: pos });
    const type = (buf[pos]! << 8) | buf[pos + 1]!;
    const rdlength = (buf[pos + 8]! << 8) | buf[pos + 9]!;
    if (pos + 10 + rdlength > n) throw malformed('rdlength overruns the message', { offset: pos });
    if (type === QType.OPT && i >= additionalFrom) {
      if (q.hasEdns) q.ednsDuplicate = true;
      if (buf[start] !== 0) throw malformed('OPT record with a non-root owner name', { offset: start });
      q.hasEdns = true;
      const ttl = ((buf[pos + 4]! << 24) | (buf[pos + 5]! << 16) | (buf[pos + 6]! << 8) | buf[pos + 7]!) >>> 0;
      q.ednsPayload = (buf[pos + 2]! << 8) | buf[pos + 3]!;
      q.ednsVersion = optVersion(ttl);
      q.ednsDo = optDnssecOk(ttl);
    }
    pos += 10 + rdlength;
  }
}

/** Whether the question name in `buf` equals `lowerWire` (lowercase wire bytes), ignoring ASCII case. */
export function sameName(buf: Uint8Array, q: ParsedQuery, lowerWire: Uint8Array): boolean {
  const len = q.nameEnd - HEADER_SIZE;
  if (len !== lowerWire.length) return false;
  for (let i = 0; i < len; i++) {
    let c = buf[HEADER_SIZE + i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== lowerWire[i]) return false;
  }
  return true;
}

/** The question name's wire bytes, ASCII-lowercased (a copy). */
export function lowerNameWire(buf: Uint8Array, q: ParsedQuery): Uint8Array {
  const out = new Uint8Array(q.nameEnd - HEADER_SIZE);
  for (let i = 0; i < out.length; i++) {
    const c = buf[HEADER_SIZE + i]!;
    out[i] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
  }
  return out;
}
