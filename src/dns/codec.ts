/**
 * DNS wire codec (RFC 1035, 3596, 6891). Decoding is defensive: every read is bounds-checked,
 * compression pointers must point strictly backwards (so a chain always terminates), and any
 * malformed input throws JitsuError('DNS_MALFORMED'). Encoding compresses names.
 *
 * Names are presentation strings without the trailing dot ('' is the root). Bytes outside
 * printable ASCII, '.' and '\' inside a label are escaped (`\DDD`, `\.`, `\\`) so no two
 * different wire names share a string. Case is kept as received.
 */
import { JitsuError } from '../errors.js';
import { formatIpv4, formatIpv6, writeIpv4, writeIpv6 } from './address.js';
import { Flag, HEADER_SIZE, MAX_LABEL_LENGTH, MAX_MESSAGE_SIZE, MAX_NAME_WIRE_LENGTH, QType } from './constants.js';
import { OPT_FIXED_SIZE, opcodeBits, opcodeOf, optDnssecOk, optExtendedRcode, optTtl, optVersion, RCODE_MASK, writeOpt } from './wire.js';

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export type RData =
  | { kind: 'A'; address: string }
  | { kind: 'AAAA'; address: string }
  | { kind: 'NS'; host: string }
  | { kind: 'CNAME'; host: string }
  | {
      kind: 'SOA';
      mname: string;
      rname: string;
      serial: number;
      refresh: number;
      retry: number;
      expire: number;
      minimum: number;
    }
  | { kind: 'RAW'; bytes: Uint8Array };

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RData;
}

export interface EdnsOption {
  code: number;
  data: Uint8Array;
}

/** The OPT pseudo-record, lifted out of the additional section. */
export interface Edns {
  udpPayloadSize: number;
  version: number;
  dnssecOk: boolean;
  options: EdnsOption[];
}

export interface DnsMessage {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** Full rcode: the header's 4 bits plus, with EDNS, the OPT record's upper 8 bits. */
  rcode: number;
  questions: DnsQuestion[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  /** Additional records except OPT (see `edns`). */
  additionals: ResourceRecord[];
  edns?: Edns;
}

export function malformed(message: string, details: Record<string, unknown> = {}): JitsuError {
  return new JitsuError('DNS_MALFORMED', `malformed DNS message: ${message}`, details);
}

// ---------------------------------------------------------------------------------------------
// Names

/** Set by readName: the offset just after the name at its original position. */
let nameEnd = 0;

function appendLabel(out: string, buf: Uint8Array, start: number, len: number): string {
  if (out.length > 0) out += '.';
  for (let i = start; i < start + len; i++) {
    const c = buf[i]!;
    if (c === 0x2e || c === 0x5c) out += '\\' + String.fromCharCode(c);
    else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += '\\' + (c < 10 ? '00' : c < 100 ? '0' : '') + c;
  }
  return out;
}

/**
 * Reads a possibly compressed name at `offset`; sets `nameEnd`. Pointer targets must lie strictly
 * before the start of the label run that contains the pointer, so targets decrease and the walk
 * ends in at most one pass over the message.
 */
function readName(buf: Uint8Array, offset: number): string {
  let pos = offset;
  let runStart = offset;
  let end = -1;
  let wireLength = 1;
  let out = '';
  for (;;) {
    if (pos >= buf.length) throw malformed('name runs past the end of the message', { offset });
    const len = buf[pos]!;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw malformed('truncated compression pointer', { offset: pos });
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= runStart) throw malformed('compression pointer does not point backwards', { offset: pos, target });
      if (end < 0) end = pos + 2;
      pos = runStart = target;
      continue;
    }
    if (kind !== 0) throw malformed('unsupported label type', { offset: pos, byte: len });
    wireLength += len + 1;
    if (wireLength > MAX_NAME_WIRE_LENGTH) throw malformed('name longer than 255 octets', { offset });
    if (pos + 1 + len > buf.length) throw malformed('label runs past the end of the message', { offset: pos });
    out = appendLabel(out, buf, pos + 1, len);
    pos += 1 + len;
  }
  nameEnd = end;
  return out;
}

export function decodeName(buf: Uint8Array, offset: number): { name: string; end: number } {
  const name = readName(buf, offset);
  return { name, end: nameEnd };
}

/** Presentation name -> uncompressed wire labels (without the root byte). */
export function nameToLabels(name: string): Uint8Array[] {
  if (name === '' || name === '.') return [];
  const text = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  const labels: Uint8Array[] = [];
  let bytes: number[] = [];
  let wireLength = 1;
  const finish = (): void => {
    if (bytes.length === 0) throw new JitsuError('DNS_MALFORMED', `empty label in name ${JSON.stringify(name)}`, { name });
    if (bytes.length > MAX_LABEL_LENGTH)
      throw new JitsuError('DNS_MALFORMED', `label longer than 63 octets in name ${JSON.stringify(name)}`, { name });
    wireLength += bytes.length + 1;
    labels.push(Uint8Array.from(bytes));
    bytes = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      finish();
    } else if (c === 0x5c) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0x30 && next <= 0x39) {
        const digits = text.slice(i + 1, i + 4);
        if (!/^\d{3}$/.test(digits) || Number(digits) > 255)
          throw new JitsuError('DNS_MALFORMED', `bad \\DDD escape in name ${JSON.stringify(name)}`, { name });
        bytes.push(Number(digits));
        i += 3;
      } else if (i + 1 < text.length) {
        bytes.push(next);
        i += 1;
      } else throw new JitsuError('DNS_MALFORMED', `dangling escape in name ${JSON.stringify(name)}`, { name });
    } else if (c > 0xff) {
      throw new JitsuError('DNS_MALFORMED', `non-ASCII character in name ${JSON.stringify(name)} (use punycode)`, { name });
    } else bytes.push(c);
  }
  finish();
  if (wireLength > MAX_NAME_WIRE_LENGTH)
    throw new JitsuError('DNS_MALFORMED', `name longer than 255 octets: ${name.slice(0, 40)}...`, { name });
  return labels;
}

/** ASCII-only lowercase of a name; DNS case-insensitivity covers A-Z only (RFC 4343). */
export function asciiLower(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function u16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) >>> 0) + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
}

function readNameWithin(buf: Uint8Array, offset: number, limit: number, what: string): string {
  const name = readName(buf, offset);
  if (nameEnd > limit) throw malformed(`${what} overruns its rdata`, { offset });
  return name;
}

function decodeRData(buf: Uint8Array, type: number, start: number, length: number): RData {
  const end = start + length;
  switch (type) {
    case QType.A:
      if (length !== 4) throw malformed('A rdata is not 4 octets', { offset: start, length });
      return { kind: 'A', address: formatIpv4(buf, start) };
    case QType.AAAA:
      if (length !== 16) throw malformed('AAAA rdata is not 16 octets', { offset: start, length });
      return { kind: 'AAAA', address: formatIpv6(buf, start) };
    case QType.NS:
    case QType.CNAME: {
      const host = readNameWithin(buf, start, end, 'name');
      if (nameEnd !== end) throw malformed('trailing bytes after name in rdata', { offset: start });
      return type === QType.NS ? { kind: 'NS', host } : { kind: 'CNAME', host };
    }
    case QType.SOA: {
      const mname = readNameWithin(buf, start, end, 'SOA mname');
      const rname = readNameWithin(buf, nameEnd, end, 'SOA rname');
      const at = nameEnd;
      if (at + 20 !== end) throw malformed('SOA rdata has the wrong length', { offset: start });
      return {
        kind: 'SOA',
        mname,
        rname,
        serial: u32(buf, at),
        refresh: u32(buf, at + 4),
        retry: u32(buf, at + 8),
        expire: u32(buf, at + 12),
        minimum: u32(buf, at + 16),
      };
    }
    default:
      return { kind: 'RAW', bytes: new Uint8Array(buf.subarray(start, end)) };
  }
}

function decodeEdns(buf: Uint8Array, name: string, klass: number, ttl: number, start: number, length: number): Edns {
  if (name !== '') throw malformed('OPT record with a non-root owner name', { offset: start });
  const options: EdnsOption[] = [];
  let pos = start;
  const end = start + length;
  while (pos < end) {
    if (pos + 4 > end) throw malformed('truncated EDNS option header', { offset: pos });
    const code = u16(buf, pos);
    const len = u16(buf, pos + 2);
    if (pos + 4 + len > end) throw malformed('EDNS option overruns the OPT rdata', { offset: pos });
    options.push({ code, data: new Uint8Array(buf.subarray(pos + 4, pos + 4 + len)) });
    pos += 4 + len;
  }
  return {
    udpPayloadSize: klass,
    version: optVersion(ttl),
    dnssecOk: optDnssecOk(ttl),
    options,
  };
}

export function decodeMessage(buf: Uint8Array): DnsMessage {
  if (buf.length < HEADER_SIZE) throw malformed('shorter than the 12-octet header', { length: buf.length });
  const flags = u16(buf, 2);
  const counts = [u16(buf, 4), u16(buf, 6), u16(buf, 8), u16(buf, 10)] as const;
  const msg: DnsMessage = {
    id: u16(buf, 0),
    qr: (flags & Flag.QR) !== 0,
    opcode: opcodeOf(flags),
    aa: (flags & Flag.AA) !== 0,
    tc: (flags & Flag.TC) !== 0,
    rd: (flags & Flag.RD) !== 0,
    ra: (flags & Flag.RA) !== 0,
    ad: (flags & Flag.AD) !== 0,
    cd: (flags & Flag.CD) !== 0,
    rcode: flags & RCODE_MASK,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  };
  let pos = HEADER_SIZE;
  for (let i = 0; i < counts[0]; i++) {
    const name = readName(buf, pos);
    pos = nameEnd;
    if (pos + 4 > buf.length) throw malformed('question runs past the end of the message', { offset: pos });
    msg.questions.push({ name, type: u16(buf, pos), class: u16(buf, pos + 2) });
    pos += 4;
  }
  const sections = [msg.answers, msg.authorities, msg.additionals];
  for (let s = 0; s < 3; s++) {
    const list = sections[s]!;
    for (let i = 0; i < counts[s + 1]!; i++) {
      const name = readName(buf, pos);
      pos = nameEnd;
      if (pos + 10 > buf.length) throw malformed('record header runs past the end of the message', { offset: pos });
      const type = u16(buf, pos);
      const klass = u16(buf, pos + 2);
      const ttl = u32(buf, pos + 4);
      const rdlength = u16(buf, pos + 8);
      pos += 10;
      if (pos + rdlength > buf.length) throw malformed('rdlength overruns the message', { offset: pos, rdlength });
      if (type === QType.OPT) {
        if (s !== 2) throw malformed('OPT record outside the additional section', { offset: pos });
        if (msg.edns) throw malformed('more than one OPT record', { offset: pos });
        msg.edns = decodeEdns(buf, name, klass, ttl, pos, rdlength);
        msg.rcode |= optExtendedRcode(ttl) << 4;
      } else {
        list.push({ name, type, class: klass, ttl, data: decodeRData(buf, type, pos, rdlength) });
      }
      pos += rdlength;
    }
  }
  return msg;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Growable output with name compression. One instance is reused across encodes (encoding is
 * synchronous), so steady state allocates only the returned Buffer.
 */
class Writer {
  buf: Buffer = Buffer.allocUnsafe(4096);
  pos = 0;
  /** Lowercased wire suffix -> offset, for compression. */
  readonly names = new Map<string, number>();

  reset(): void {
    this.pos = 0;
    this.names.clear();
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos + n > MAX_MESSAGE_SIZE) throw new JitsuError('DNS_MALFORMED', 'encoded message exceeds 65535 octets');
    const next = Buffer.allocUnsafe(Math.min(MAX_MESSAGE_SIZE, Math.max(this.buf.length * 2, this.pos + n)));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf[this.pos++] = (v >> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  name(name: string, compress: boolean): void {
    const labels = nameToLabels(name);
    for (let i = 0; i < labels.length; i++) {
      const key = suffixKey(labels, i);
      if (compress) {
        const at = this.names.get(key);
        if (at !== undefined) {
          this.u16(0xc000 | at);
          return;
        }
      }
      if (this.pos < 0x4000) this.names.set(key, this.pos);
      const label = labels[i]!;
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }
}

function suffixKey(labels: Uint8Array[], from: number): string {
  let key = '';
  for (let i = from; i < labels.length; i++) {
    const label = labels[i]!;
    key += String.fromCharCode(label.length);
    for (let j = 0; j < label.length; j++) {
      const c = label[j]!;
      key += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
    }
  }
  return key;
}

const writer = new Writer();

function writeRecord(w: Writer, rr: ResourceRecord): void {
  w.name(rr.name, true);
  w.u16(rr.type);
  w.u16(rr.class);
  w.u32(rr.ttl);
  const lengthAt = w.pos;
  w.u16(0);
  const d = rr.data;
  switch (d.kind) {
    case 'A':
      w.ensure(4);
      writeIpv4(d.address, w.buf, w.pos);
      w.pos += 4;
      break;
    case 'AAAA':
      w.ensure(16);
      writeIpv6(d.address, w.buf, w.pos);
      w.pos += 16;
      break;
    case 'NS':
    case 'CNAME':
      w.name(d.host, true);
      break;
    case 'SOA':
      w.name(d.mname, true);
      w.name(d.rname, true);
      w.u32(d.serial);
      w.u32(d.refresh);
      w.u32(d.retry);
      w.u32(d.expire);
      w.u32(d.minimum);
      break;
    case 'RAW':
      w.bytes(d.bytes);
      break;
  }
  const rdlength = w.pos - lengthAt - 2;
  w.buf[lengthAt] = rdlength >> 8;
  w.buf[lengthAt + 1] = rdlength & 0xff;
}

function writeEdns(w: Writer, edns: Edns, extendedRcode: number): void {
  let len = 0;
  for (const o of edns.options) len += 4 + o.data.length;
  w.ensure(OPT_FIXED_SIZE);
  writeOpt(w.buf, w.pos, edns.udpPayloadSize, optTtl(extendedRcode, edns.version, edns.dnssecOk), len);
  w.pos += OPT_FIXED_SIZE;
  for (const o of edns.options) {
    w.u16(o.code);
    w.u16(o.data.length);
    w.bytes(o.data);
  }
}

export function encodeFlags(m: Pick<DnsMessage, 'qr' | 'opcode' | 'aa' | 'tc' | 'rd' | 'ra' | 'ad' | 'cd' | 'rcode'>): number {
  return (
    (m.qr ? Flag.QR : 0) |
    opcodeBits(m.opcode) |
    (m.aa ? Flag.AA : 0) |
    (m.tc ? Flag.TC : 0) |
    (m.rd ? Flag.RD : 0) |
    (m.ra ? Flag.RA : 0) |
    (m.ad ? Flag.AD : 0) |
    (m.cd ? Flag.CD : 0) |
    (m.rcode & RCODE_MASK)
  );
}

/** Encodes with name compression. Returns a fresh Buffer owned by the caller. */
export function encodeMessage(msg: DnsMessage): Buffer {
  if (msg.rcode > 0xf && !msg.edns) throw new JitsuError('DNS_MALFORMED', `rcode ${msg.rcode} needs EDNS`);
  const w = writer;
  w.reset();
  w.u16(msg.id);
  w.u16(encodeFlags(msg));
  w.u16(msg.questions.length);
  w.u16(msg.answers.length);
  w.u16(msg.authorities.length);
  w.u16(msg.additionals.length + (msg.edns ? 1 : 0));
  for (const q of msg.questions) {
    w.name(q.name, true);
    w.u16(q.type);
    w.u16(q.class);
  }
  for (const rr of msg.answers) writeRecord(w, rr);
  for (const rr of msg.authorities) writeRecord(w, rr);
  for (const rr of msg.additionals) writeRecord(w, rr);
  if (msg.edns) writeEdns(w, msg.edns, msg.rcode >> 4);
  return Buffer.from(w.buf.subarray(0, w.pos));
}
