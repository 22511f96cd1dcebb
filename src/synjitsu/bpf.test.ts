import { describe, expect, it } from 'vitest';
import { HEADER_SNAPLEN, MAX_FILTERED_IPS, runFilter, SNAPLEN, watchFilter } from './bpf.js';
import { writeGratuitousArp } from './pdu/arp.js';
import { parseMac } from './pdu/ethernet.js';
import { parseIpv4 } from './pdu/ipv4.js';
import { TCP_SYN, writeTcpFrame } from './pdu/tcp.js';

const mac = parseMac('02:00:00:00:00:01');
const a = parseIpv4('10.202.0.10');
const b = parseIpv4('10.202.0.11');
const other = parseIpv4('10.202.0.99');

function tcpFrame(src: number, dst: number): Buffer {
  const out = Buffer.alloc(128);
  const len = writeTcpFrame(out, 0, { srcMac: mac, dstMac: mac, srcIp: src, dstIp: dst, srcPort: 1, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 1 });
  return out.subarray(0, len);
}

function arpFor(target: number): Buffer {
  const out = Buffer.alloc(64);
  writeGratuitousArp(out, 0, other, mac);
  out.writeUInt32BE(target, 38);
  return out.subarray(0, 42);
}

describe('watchFilter', () => {
  it('cuts frames carrying the kernel relay mark to their headers, and only those', () => {
    const mark = 0x4a54534a;
    const prog = watchFilter([a], mark);
    expect(runFilter(prog, tcpFrame(a, other), mark)).toBe(HEADER_SNAPLEN);
    expect(runFilter(prog, tcpFrame(a, other), mark + 1)).toBe(SNAPLEN);
    expect(runFilter(prog, tcpFrame(other, other), mark)).toBe(0);
    expect(runFilter(watchFilter([a]), tcpFrame(a, other), mark)).toBe(SNAPLEN);
  });

  it('accepts TCP to or from watched IPs and ARP for them, drops the rest', () => {
    const prog = watchFilter([a, b]);
    expect(runFilter(prog, tcpFrame(other, a))).toBe(SNAPLEN);
    expect(runFilter(prog, tcpFrame(b, other))).toBe(SNAPLEN);
    expect(runFilter(prog, tcpFrame(other, other))).toBe(0);
    expect(runFilter(prog, arpFor(b))).toBe(SNAPLEN);
    expect(runFilter(prog, arpFor(other))).toBe(0);
    const udp = Buffer.from(tcpFrame(other, a));
    udp[23] = 17;
    expect(runFilter(prog, udp)).toBe(0);
    const ipv6 = Buffer.from(tcpFrame(other, a));
    ipv6.writeUInt16BE(0x86dd, 12);
    expect(runFilter(prog, ipv6)).toBe(0);
  });
  it('drops everything when nothing is watched', () => {
    expect(runFilter(watchFilter([]), tcpFrame(other, a))).toBe(0);
  });
  it('falls back to all ARP + TCP past the jump-offset limit', () => {
    const many = Array.from({ length: MAX_FILTERED_IPS + 1 }, (_, i) => parseIpv4(`10.202.1.${i + 1}`));
    const prog = watchFilter(many);
    expect(runFilter(prog, tcpFrame(other, other))).toBe(SNAPLEN);
    expect(prog.length).toBeLessThan(200);
    // At the limit every jump still fits in 8 bits.
    const atLimit = watchFilter(many.slice(0, MAX_FILTERED_IPS));
    expect(runFilter(atLimit, tcpFrame(other, many[MAX_FILTERED_IPS - 1]!))).toBe(SNAPLEN);
    expect(runFilter(atLimit, arpFor(many[0]!))).toBe(SNAPLEN);
  });
});
