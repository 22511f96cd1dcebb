import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../observe/metrics.js';
import { answersArp, arpTarget } from './arp.js';
import { maskStrategy } from '../masking/registry.js';
import type { MaskTarget } from './masker.js';
import { SynjitsuMetrics } from './metrics.js';
import { ARP_FRAME, writeArpRequest } from './pdu/arp.js';
import { BROADCAST_MAC, parseMac } from './pdu/ethernet.js';
import { FrameView } from './pdu/frame.js';
import { parseIpv4 } from './pdu/ipv4.js';
import { newService, type Phase, type Service } from './state.js';

const clientMac = parseMac('02:00:00:ca:00:02');
const clientIp = parseIpv4('10.202.9.2');
const target: MaskTarget = { service: 'web', ip: '10.202.9.10', mask: 'park', mac: '02:00:00:ca:00:0a' };
const svcIp = parseIpv4(target.ip);
const svcMac = parseMac(target.mac);

function table(phase: Phase, mask: MaskTarget['mask'] = 'park'): Map<number, Service> {
  const metrics = new SynjitsuMetrics(new MetricsRegistry());
  const svc = newService({ ...target, mask }, svcIp, svcMac, phase, metrics.forService('web'));
  return new Map([[svcIp, svc]]);
}

function request(senderMac: Buffer, senderIp: number, targetIp: number): FrameView {
  const b = Buffer.alloc(64);
  writeArpRequest(b, 0, BROADCAST_MAC, senderMac, senderIp, targetIp);
  const v = new FrameView();
  v.parse(b, 0, ARP_FRAME);
  return v;
}

describe('ARP answers', () => {
  it('answers per phase and strategy: watched (summon), booting (masked), never once ready', () => {
    expect(answersArp('watched', maskStrategy('none'))).toBe(true);
    expect(answersArp('watched', maskStrategy('park'))).toBe(true);
    expect(answersArp('watched', maskStrategy('handshake'))).toBe(true);
    expect(answersArp('watched', maskStrategy('activate'))).toBe(false);
    expect(answersArp('booting', maskStrategy('park'))).toBe(true);
    expect(answersArp('booting', maskStrategy('handshake'))).toBe(true);
    expect(answersArp('booting', maskStrategy('none'))).toBe(false);
    expect(answersArp('ready', maskStrategy('park'))).toBe(false);
    expect(answersArp('ready', maskStrategy('handshake'))).toBe(false);
  });

  it('answers a client asking for a booting service’s IP', () => {
    const byIp = table('booting');
    expect(arpTarget(request(clientMac, clientIp, svcIp), byIp)).toBe(byIp.get(svcIp));
  });

  it('leaves IPs it does not watch, ready guests and ARP replies alone', () => {
    expect(arpTarget(request(clientMac, clientIp, parseIpv4('10.202.9.11')), table('booting'))).toBeUndefined();
    expect(arpTarget(request(clientMac, clientIp, svcIp), table('ready'))).toBeUndefined();
    const reply = request(clientMac, clientIp, svcIp);
    reply.buf.writeUInt16BE(2, 20);
    expect(arpTarget(reply, table('booting'))).toBeUndefined();
  });

  it('never answers the guest’s own probes or announcements (it would see an address conflict)', () => {
    const byIp = table('booting');
    // RFC 5227 probe: sender IP 0.
    expect(arpTarget(request(svcMac, 0, svcIp), byIp)).toBeUndefined();
    // Gratuitous ARP: sender IP is the service's own.
    expect(arpTarget(request(clientMac, svcIp, svcIp), byIp)).toBeUndefined();
    // Anything from the guest's MAC.
    expect(arpTarget(request(svcMac, clientIp, svcIp), byIp)).toBeUndefined();
  });
});
