/**
 * Token buckets per client prefix (an IPv4 /24, an IPv6 /56: what one site or one customer
 * usually holds, as Knot's and NSD's RRL group clients) in a table of fixed size. Memory does not
 * grow with the number of sources: a flood from many spoofed addresses reuses slots.
 *
 * Layout (after Knot's RRL table): open addressing, a key hashes to a slot and may sit in any of the
 * PROBE slots after it. A new prefix takes an empty slot there, or one idle long enough to have
 * refilled (forgetting it changes nothing), else it evicts the least recently used of them; the
 * evicted prefix starts over with a full bucket, so eviction can only be lenient, never unfair.
 */
import { ipv4At, ipv6At, readU32, type QuerySource } from './source.js';

export interface PrefixRateOptions {
  /** Tokens per second per prefix; the bucket holds one second's worth (the burst). */
  rate: number;
  /** Table slots, rounded up to a power of two. Default 16384 (~0.5 MiB). */
  slots?: number;
}

/** Slots searched for a key before the least recently used of them is evicted. */
const PROBE = 8;
/** Sets IPv6 keys apart from IPv4 ones: a /24 or the low 24 bits of a /56 leave the top byte free. */
const V6_TAG = 0x0100_0000;

export class PrefixRateTable {
  readonly slots: number;
  /** Prefixes pushed out to make room for another one (bounded memory at work). */
  evictions = 0;
  private readonly mask: number;
  private readonly rate: number;
  private readonly perMs: number;
  private readonly keyHi: Uint32Array;
  private readonly keyLo: Uint32Array;
  private readonly tokens: Float64Array;
  /** Last use, ms; 0 = empty slot. */
  private readonly stamp: Float64Array;
  /** Times the prefix in this slot was over its rate (for RRL's slip cadence). */
  private readonly over: Uint32Array;
  /** The slot `take()` last used: callers read `overCount()` of the same prefix right after. */
  private last = 0;

  constructor(opts: PrefixRateOptions) {
    if (!(opts.rate > 0)) throw new RangeError('rate must be > 0');
    let size = 1;
    while (size < (opts.slots ?? 16384)) size <<= 1;
    this.slots = size;
    this.mask = size - 1;
    this.rate = opts.rate;
    this.perMs = opts.rate / 1000;
    this.keyHi = new Uint32Array(size);
    this.keyLo = new Uint32Array(size);
    this.tokens = new Float64Array(size);
    this.stamp = new Float64Array(size);
    this.over = new Uint32Array(size);
  }

  /** Spends one token of the source's prefix: true if it had one, false if the prefix is over its rate. */
  take(source: QuerySource, nowMs: number): boolean {
    let hi: number;
    let lo: number;
    const v4 = ipv4At(source);
    const b = source.bytes;
    if (v4 >= 0) {
      hi = 0;
      lo = readU32(b, v4) >>> 8; // the /24
    } else {
      const a = ipv6At(source);
      hi = readU32(b, a); // the /56: 32 + 24 bits
      lo = (readU32(b, a + 4) >>> 8) | V6_TAG;
    }
    const now = nowMs > 0 ? nowMs : 1e-9; // 0 marks an empty slot
    let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    const start = h & this.mask;
    // The slot a new prefix takes: the first free one (victimStamp -1), else the least recently used.
    let victim = start;
    let victimStamp = Infinity;
    for (let i = 0; i < PROBE; i++) {
      const slot = (start + i) & this.mask;
      const stamp = this.stamp[slot]!;
      if (stamp !== 0 && this.keyHi[slot] === hi && this.keyLo[slot] === lo) return this.spend(slot, now);
      // Empty, or idle for a second: its bucket would be full again, so reusing it forgets nothing.
      if (stamp === 0 || now - stamp >= 1000) {
        if (victimStamp !== -1) {
          victim = slot;
          victimStamp = -1;
        }
      } else if (stamp < victimStamp) {
        victim = slot;
        victimStamp = stamp;
      }
    }
    if (victimStamp !== -1) this.evictions++;
    this.keyHi[victim] = hi;
    this.keyLo[victim] = lo;
    this.tokens[victim] = this.rate;
    this.stamp[victim] = now;
    this.over[victim] = 0;
    return this.spend(victim, now);
  }

  /** How often the prefix of the last `take()` has been over its rate (1 after its first refusal). */
  overCount(): number {
    return this.over[this.last]!;
  }

  private spend(slot: number, now: number): boolean {
    this.last = slot;
    const elapsed = now - this.stamp[slot]!;
    let tokens = this.tokens[slot]!;
    // A late answer (after a boot) carries its query's older arrival time: never move time back.
    if (elapsed > 0) {
      tokens = Math.min(this.rate, tokens + elapsed * this.perMs);
      this.stamp[slot] = now;
    }
    if (tokens >= 1) {
      this.tokens[slot] = tokens - 1;
      return true;
    }
    this.tokens[slot] = tokens;
    this.over[slot]++;
    return false;
  }
}
