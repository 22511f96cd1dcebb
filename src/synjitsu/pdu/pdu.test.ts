import { describe, expect, it } from 'vitest';
import { ARP_FRAME, ARP_REPLY, ARP_REQUEST, arp, writeArpReply, writeGratuitousArp } from './arp.js';
import { adjust16, adjust32, fold, sum16 } from './checksum.js';
import { formatMac, parseMac } from './ethernet.js';
import { FRAME_ARP, FRAME_OTHER, FRAME_TCP, FrameView } from './frame.js';
import { formatIpv4, ipv4ChecksumOk, parseIpv4 } from './ipv4.js';
import { parseTcpOptions, setTcpChecksum, TCP_ACK, TCP_SYN, tcp, tcpChecksumOk, TcpOptions, writeTcpFrame } from './tcp.js';

const clientMac = parseMac('02:00:00:00:00:02');
const guestMac = parseMac('02:00:00:00:00:0a');
const clientIp = parseIpv4('10.202.0.2');
const guestIp = parseIpv4('10.202.0.10');

function syn(extra: Partial<Parameters<typeof writeTcpFrame>[2]> = {}): Buffer {
  const out = Buffer.alloc(2048);
  const len = writeTcpFrame(out, 0, {
    srcMac: clientMac,
    dstMac: guestMac,
    srcIp: clientIp,
    dstIp: guestIp,
    srcPort: 40000,
    dstPort: 80,
    seq: 0xfffffff0,
    ack: 0,
    flags: TCP_SYN,
    window: 64240,
    mss: 1460,
    wscale: 7,
    sackPermitted: true,
    ...extra,
  });
  return out.subarray(0, len);
}

describe('checksums', () => {
  it('matches the RFC 1071 textbook IPv4 header', () => {
    const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(fold(sum16(h, 0, h.length)).toString(16)).toBe('b861');
  });
  it('sums an odd tail as if zero-padded', () => {
    expect(sum16(Buffer.from([1, 2, 3]), 0, 3)).toBe(0x0102 + 0x0300);
  });
  it('incremental updates equal a full recompute', () => {
    const f = syn({ payload: Buffer.from('hello world') });
    const t = 34;
    const old = tcp.seq(f, t);
    const sum = tcp.checksum(f, t);
    f.writeUInt32BE(0x12345678, t + 4);
    let s = adjust32(sum, old, 0x12345678);
    f.writeUInt16BE(1000, t + 14);
    s = adjust16(s, 64240, 1000);
    f.writeUInt16BE(s, t + 16);
    expect(tcpChecksumOk(f, t, f.length - t, clientIp, guestIp)).toBe(true);
  });
});

describe('addresses', () => {
  it('round-trips MACs and IPv4 and rejects garbage with the input in the message', () => {
    expect(formatMac(parseMac('02:3A:ca:01:00:0a'))).toBe('02:3a:ca:01:00:0a');
    expect(formatIpv4(parseIpv4('10.202.255.1'))).toBe('10.202.255.1');
    expect(() => parseMac('02:00:00')).toThrow(/02:00:00/);
    expect(() => parseIpv4('10.0.0.256')).toThrow(/10.0.0.256/);
  });
});

describe('TCP frames', () => {
  it('builds a SYN with valid checksums that parses back', () => {
    const f = syn({ payload: Buffer.from('abc') });
    expect(ipv4ChecksumOk(f, 14)).toBe(true);
    expect(tcpChecksumOk(f, 34, f.length - 34, clientIp, guestIp)).toBe(true);
    const v = new FrameView();
    expect(v.parse(f, 0, f.length)).toBe(FRAME_TCP);
    expect(v).toMatchObject({ srcIp: clientIp, dstIp: guestIp, srcPort: 40000, dstPort: 80, seq: 0xfffffff0, flags: TCP_SYN });
    expect(v.payloadLen).toBe(3);
    expect(f.toString('latin1', v.payloadOff, v.payloadOff + 3)).toBe('abc');
    const o = parseTcpOptions(f, v.tcpOff, new TcpOptions());
    expect(o).toMatchObject({ mss: 1460, wscale: 7, sackPermitted: true, hasTimestamps: false });
  });
  it('ignores Ethernet padding and reports the IP length', () => {
    const f = syn({ flags: TCP_ACK, mss: -1, wscale: -1, sackPermitted: false });
    const padded = Buffer.concat([f, Buffer.alloc(6)]);
    const v = new FrameView();
    v.parse(padded, 0, padded.length);
    expect(v.payloadLen).toBe(0);
    expect(v.ipFrameLength).toBe(f.length);
  });
  it('parses timestamps and stops at malformed options without throwing', () => {
    const f = syn({ mss: -1, wscale: -1, sackPermitted: false });
    // Rebuild with a hand-written header: NOP NOP TS(10) + a truncated option.
    const opts = Buffer.from([1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 2, 9, 0, 0]);
    const frame = Buffer.concat([f.subarray(0, 54), opts]);
    frame[46] = ((20 + opts.length) / 4) << 4;
    const o = parseTcpOptions(frame, 34, new TcpOptions());
    expect(o).toMatchObject({ hasTimestamps: true, tsVal: 5, tsEcr: 6, mss: -1 });
    setTcpChecksum(frame, 34, frame.length - 34, clientIp, guestIp);
    expect(tcpChecksumOk(frame, 34, frame.length - 34, clientIp, guestIp)).toBe(true);
  });
  it('rejects truncated, fragmented and non-TCP frames', () => {
    const v = new FrameView();
    const f = syn();
    expect(v.parse(f, 0, 30)).toBe(FRAME_OTHER);
    const frag = Buffer.from(f);
    frag.writeUInt16BE(0x2000, 20); // MF
    expect(v.parse(frag, 0, frag.length)).toBe(FRAME_OTHER);
    const udp = Buffer.from(f);
    udp[23] = 17;
    expect(v.parse(udp, 0, udp.length)).toBe(FRAME_OTHER);
    const bad = Buffer.from(f);
    bad[46] = 0xf0; // data offset beyond the segment
    expect(v.parse(bad, 0, bad.length)).toBe(FRAME_OTHER);
  });
});

describe('ARP', () => {
  it('answers a request with the masked MAC, addressed to the requester', () => {
    const req = Buffer.alloc(64);
    writeGratuitousArp(req, 0, clientIp, clientMac);
    req.writeUInt32BE(guestIp, 38); // who-has guest tell client
    const v = new FrameView();
    expect(v.parse(req, 0, ARP_FRAME)).toBe(FRAME_ARP);
    expect(arp.isIpv4OverEthernet(req, 0, ARP_FRAME)).toBe(true);
    expect(arp.op(req, 0)).toBe(ARP_REQUEST);
    const out = Buffer.alloc(64);
    const len = writeArpReply(out, 0, req, 0, guestIp, guestMac);
    expect(len).toBe(ARP_FRAME);
    expect(formatMac(out, 0)).toBe('02:00:00:00:00:02');
    expect(formatMac(out, 6)).toBe('02:00:00:00:00:0a');
    expect(arp.op(out, 0)).toBe(ARP_REPLY);
    expect(arp.senderIp(out, 0)).toBe(guestIp);
    expect(arp.targetIp(out, 0)).toBe(clientIp);
    expect(formatMac(out, 22)).toBe('02:00:00:00:00:0a');
  });
});
