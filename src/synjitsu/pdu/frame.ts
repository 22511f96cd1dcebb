import { ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './ethernet.js';
import { IP_PROTO_TCP, ipv4 } from './ipv4.js';
import { tcp } from './tcp.js';

export const FRAME_OTHER = 0;
export const FRAME_ARP = 1;
export const FRAME_TCP = 2;

/**
 * One parse of a received frame: where each layer starts. A single instance is reused for every
 * frame of a batch, so the receive path allocates nothing.
 */
export class FrameView {
  buf: Buffer = Buffer.alloc(0);
  off = 0;
  len = 0;
  kind = FRAME_OTHER;
  ipOff = 0;
  tcpOff = 0;
  /** TCP segment length (header + payload) as the IP header says. */
  tcpLen = 0;
  payloadOff = 0;
  payloadLen = 0;
  srcIp = 0;
  dstIp = 0;
  srcPort = 0;
  dstPort = 0;
  flags = 0;
  seq = 0;
  ack = 0;
  /** The kernel relay already translated this frame (set by the capture from the ring's flags). */
  kernelRelayed = false;

  /**
   * Parses the frame at buf[off, off+len); returns its kind (malformed frames are FRAME_OTHER).
   * `headersOnly`: the capture kept only the headers; the lengths are the IP header's, and the
   * payload is not there (`complete` is false).
   */
  parse(buf: Buffer, off: number, len: number, headersOnly = false): number {
    this.buf = buf;
    this.off = off;
    this.len = len;
    this.kind = FRAME_OTHER;
    if (len < ETH_HEADER) return FRAME_OTHER;
    const type = buf.readUInt16BE(off + 12);
    if (type === ETHERTYPE_ARP) {
      this.kind = FRAME_ARP;
      return FRAME_ARP;
    }
    if (type !== ETHERTYPE_IPV4 || len < ETH_HEADER + 20 + 20) return FRAME_OTHER;
    const ip = off + ETH_HEADER;
    if (ipv4.version(buf, ip) !== 4 || ipv4.protocol(buf, ip) !== IP_PROTO_TCP || ipv4.isFragment(buf, ip)) return FRAME_OTHER;
    const ihl = ipv4.headerLength(buf, ip);
    const total = ipv4.totalLength(buf, ip);
    if (ihl < 20 || total < ihl + 20 || (ETH_HEADER + total > len && !headersOnly)) return FRAME_OTHER;
    const t = ip + ihl;
    if (t + 20 > off + len) return FRAME_OTHER;
    const thl = tcp.headerLength(buf, t);
    if (thl < 20 || thl > total - ihl || t + thl > off + len) return FRAME_OTHER;
    this.ipOff = ip;
    this.tcpOff = t;
    this.tcpLen = total - ihl;
    this.payloadOff = t + thl;
    this.payloadLen = total - ihl - thl;
    this.srcIp = ipv4.src(buf, ip);
    this.dstIp = ipv4.dst(buf, ip);
    this.srcPort = tcp.srcPort(buf, t);
    this.dstPort = tcp.dstPort(buf, t);
    this.flags = tcp.flags(buf, t);
    this.seq = tcp.seq(buf, t);
    this.ack = tcp.ack(buf, t);
    this.kind = FRAME_TCP;
    return FRAME_TCP;
  }

  /** The payload is all there (false for a frame the capture cut to its headers). */
  get complete(): boolean {
    return this.payloadOff + this.payloadLen <= this.off + this.len;
  }

  /** Length of the frame as the IP header says (drops Ethernet padding). */
  get ipFrameLength(): number {
    return this.tcpOff - this.off + this.tcpLen;
  }
}
