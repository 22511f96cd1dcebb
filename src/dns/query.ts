/**
 * Hot-path query parser: header, the first question and the OPT record, written into a
 * caller-owned object that is reused for every query (no allocation except the key string).
 * Anything unusual (compressed question name, non-ASCII bytes) is left to the full decoder.
 */
import { EDNS_DO, HEADER_SIZE, MAX_NAME_WIRE_LENGTH, QType } from './constants.js';
import { malformed } from './codec.js';

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
   * The question name's wire bytes as a latin1 string, ASCII-lowercased: a cache key that
   * matches every 0x20 variant of a name. Empty when the name holds bytes >= 0x80.
   */
  key = '';
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
  q.flags = (buf[2]! << 8) | buf[3]!;
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
  let upper = false;
  let high = false;
  const n = buf.length;
  for (;;) {
    if (pos >= n) throw malformed('question name runs past the end of the message', { offset: pos });
    const len = buf[pos]!;
    if (len === 0) break;
    if (len > 63) throw malformed(len >= 0xc0 ? 'compressed first question name' : 'label longer than 63 octets', { offset: pos });
    const end = pos + 1 + len;
    if (end > n) throw malformed('label runs past the end of the message', { offset: pos });
    for (let i = pos + 1; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x41 && c <= 0x5a) upper = true;
      else if (c >= 0x80) high = true;
    }
    pos = end;
    if (pos - HEADER_SIZE + 1 > MAX_NAME_WIRE_LENGTH) throw malformed('name longer than 255 octets', { offset: HEADER_SIZE });
  }
  q.nameEnd = pos + 1;
  if (q.nameEnd + 4 > n) throw malformed('question runs past the end of the message', { offset: q.nameEnd });
  q.qtype = (buf[q.nameEnd]! << 8) | buf[q.nameEnd + 1]!;
  q.qclass = (buf[q.nameEnd + 2]! << 8) | buf[q.nameEnd + 3]!;
  q.questionEnd = q.nameEnd + 4;
  if (high) q.key = '';
  else {
    const key = buf.toString('latin1', HEADER_SIZE, q.nameEnd);
    q.key = upper ? key.toLowerCase() : key;
  }

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
      q.ednsPayload = (buf[pos + 2]! << 8) | buf[pos + 3]!;
      q.ednsVersion = buf[pos + 5]!;
      q.ednsDo = (((buf[pos + 6]! << 8) | buf[pos + 7]!) & EDNS_DO) !== 0;
    }
    pos += 10 + rdlength;
  }
}
