/**
 * IPv4/IPv6 text <-> wire bytes for A/AAAA rdata. Written out (rather than going through
 * node:net) because the codec needs bytes, and the text form must be the canonical RFC 5952 one.
 */
import { JitsuError } from '../errors.js';

function bad(text: string, family: 4 | 6): JitsuError {
  return new JitsuError('DNS_MALFORMED', `invalid IPv${family} address ${JSON.stringify(text)}`, { address: text });
}

/** Writes the 4 bytes of a dotted-quad into `out` at `offset`. */
export function writeIpv4(text: string, out: Uint8Array, offset: number): void {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || part > 3) throw bad(text, 4);
      out[offset + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) throw bad(text, 4);
    } else throw bad(text, 4);
  }
  if (part !== 4) throw bad(text, 4);
}

export function formatIpv4(buf: Uint8Array, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** Writes the 16 bytes of an IPv6 address (with `::` and an optional trailing dotted quad). */
export function writeIpv6(text: string, out: Uint8Array, offset: number): void {
  const words: number[] = [];
  let gapAt = -1;
  const parts = text.split(':');
  if (parts.length < 3 || parts.length > 9) throw bad(text, 6);
  // A leading or trailing '::' splits into two empty strings; collapse them to one gap marker.
  let start = 0;
  let end = parts.length;
  if (parts[0] === '') {
    if (parts[1] !== '') throw bad(text, 6);
    start = 1;
  }
  if (parts[end - 1] === '') {
    if (parts[end - 2] !== '') throw bad(text, 6);
    end--;
  }
  for (let i = start; i < end; i++) {
    const p = parts[i]!;
    if (p === '') {
      if (gapAt >= 0) throw bad(text, 6);
      gapAt = words.length;
      continue;
    }
    if (i === end - 1 && p.includes('.')) {
      const v4 = new Uint8Array(4);
      writeIpv4(p, v4, 0);
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(p)) throw bad(text, 6);
    words.push(parseInt(p, 16));
  }
  if (gapAt < 0 ? words.length !== 8 : words.length > 7) throw bad(text, 6);
  const fill = 8 - words.length;
  let w = 0;
  for (let i = 0; i < 8; i++) {
    let v: number;
    if (gapAt >= 0 && i >= gapAt && i < gapAt + fill) v = 0;
    else v = words[w++]!;
    out[offset + 2 * i] = v >> 8;
    out[offset + 2 * i + 1] = v & 0xff;
  }
}

/** RFC 5952 text: lowercase, no leading zeros, longest run (>= 2) of zero words as `::`. */
export function formatIpv6(buf: Uint8Array, offset: number): string {
  const words = new Array<number>(8);
  for (let i = 0; i < 8; i++) words[i] = (buf[offset + 2 * i]! << 8) | buf[offset + 2 * i + 1]!;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return words.map((w) => w.toString(16)).join(':');
  const head = words.slice(0, bestStart).map((w) => w.toString(16)).join(':');
  const tail = words.slice(bestStart + bestLen).map((w) => w.toString(16)).join(':');
  return `${head}::${tail}`;
}
