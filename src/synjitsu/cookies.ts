import { randomBytes } from 'node:crypto';

/**
 * Stateless SYN cookies: the SYN-ACK's ISN encodes everything the handshake needs (client MSS class,
 * client window scale, a time slot) plus a keyed hash of the 4-tuple and the client's ISN, so a SYN
 * flood allocates nothing: state is created only for an ACK that proves it saw our SYN-ACK.
 *
 * Layout: [31..27] time slot (64 s, mod 32) | [26..24] MSS index | [23..20] wscale (15 = none) | [19..0] hash
 */
export const MSS_TABLE: readonly number[] = [536, 1200, 1360, 1400, 1440, 1460, 4312, 8960];
const SLOT_SECONDS = 64;
/** Cookies older than this many slots are rejected (so a cookie lives 64..128 s). */
const MAX_AGE_SLOTS = 1;

export interface CookieFacts {
  /** MSS class the client advertised (rounded down to MSS_TABLE). */
  mss: number;
  /** Client's window scale, or -1 when it sent none. */
  wscale: number;
}

function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class SynCookies {
  private readonly k: Uint32Array;
  constructor(
    secret: Buffer = randomBytes(16),
    private readonly now: () => number = () => Date.now() / 1000,
  ) {
    if (secret.length < 16) throw new RangeError('SYN cookie secret must be at least 16 bytes');
    this.k = new Uint32Array([secret.readUInt32LE(0), secret.readUInt32LE(4), secret.readUInt32LE(8), secret.readUInt32LE(12)]);
  }

  private hash(srcIp: number, srcPort: number, dstIp: number, dstPort: number, clientIsn: number, slot: number, meta: number): number {
    let h = this.k[0]!;
    h = mix(h ^ srcIp);
    h = mix((h + this.k[1]!) ^ dstIp);
    h = mix((h + this.k[2]!) ^ ((srcPort << 16) | dstPort));
    h = mix((h + this.k[3]!) ^ clientIsn);
    h = mix(h ^ ((slot << 8) | meta) ^ this.k[0]!);
    return h & 0xfffff;
  }

  /** The full slot number goes into the hash, so a cookie cannot come back to life when the 5 bits wrap. */
  private slot(): number {
    return Math.floor(this.now() / SLOT_SECONDS);
  }

  /** The ISN for our SYN-ACK. */
  make(srcIp: number, srcPort: number, dstIp: number, dstPort: number, clientIsn: number, clientMss: number, clientWscale: number): number {
    let mssIndex = 0;
    const mss = clientMss < 0 ? 536 : clientMss;
    for (let i = MSS_TABLE.length - 1; i >= 0; i--) {
      if (MSS_TABLE[i]! <= mss) {
        mssIndex = i;
        break;
      }
    }
    const ws = clientWscale < 0 ? 15 : Math.min(clientWscale, 14);
    const slot = this.slot();
    const meta = (mssIndex << 4) | ws;
    return (((slot & 0x1f) << 27) | (meta << 20) | this.hash(srcIp, srcPort, dstIp, dstPort, clientIsn, slot | 0, meta)) >>> 0;
  }

  /**
   * Checks the ACK completing a handshake: `ourIsn` is ack-1, `clientIsn` is seq-1 of that ACK.
   * Returns the facts encoded at SYN time, or undefined for a forged or expired cookie.
   */
  check(srcIp: number, srcPort: number, dstIp: number, dstPort: number, clientIsn: number, ourIsn: number): CookieFacts | undefined {
    const now = this.slot();
    const age = (now - (ourIsn >>> 27)) & 0x1f;
    if (age > MAX_AGE_SLOTS) return undefined;
    const meta = (ourIsn >>> 20) & 0x7f;
    if (this.hash(srcIp, srcPort, dstIp, dstPort, clientIsn >>> 0, (now - age) | 0, meta) !== (ourIsn & 0xfffff)) return undefined;
    const ws = meta & 0xf;
    return { mss: MSS_TABLE[meta >>> 4]!, wscale: ws === 15 ? -1 : ws };
  }
}
