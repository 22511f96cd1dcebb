import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../observe/metrics.js';
import { endpointKey, FlowBudget } from './flowtable.js';
import { resolveLimits } from './limits.js';
import type { MaskTarget } from './masker.js';
import { SynjitsuMetrics } from './metrics.js';
import { parkSegment } from './park.js';
import { parseMac } from './pdu/ethernet.js';
import { FRAME_TCP, FrameView } from './pdu/frame.js';
import { parseIpv4 } from './pdu/ipv4.js';
import { TCP_ACK, TCP_RST, TCP_SYN, tcpChecksumOk, writeTcpFrame } from './pdu/tcp.js';
import { newService, type Service } from './state.js';

const clientMac = parseMac('02:00:00:ca:01:02');
const clientIp = parseIpv4('10.202.9.2');
const target: MaskTarget = { service: 'web', ip: '10.202.9.10', mask: 'park', mac: '02:00:00:ca:01:0a' };
const svcIp = parseIpv4(target.ip);

function rig(maxParkedPerService = 16) {
  const metrics = new SynjitsuMetrics(new MetricsRegistry());
  const budget = new FlowBudget(resolveLimits({ maxParkedPerService }));
  const svc: Service = newService(target, svcIp, parseMac(target.mac), 'booting', metrics.forService('web'));
  return { metrics, budget, svc };
}

/** A captured client segment, its checksum left unfinished as checksum offload leaves it. */
function segment(port: number, isn: number, flags = TCP_SYN): FrameView {
  const b = Buffer.alloc(128);
  const len = writeTcpFrame(b, 0, {
    srcMac: clientMac,
    dstMac: parseMac(target.mac),
    srcIp: clientIp,
    dstIp: svcIp,
    srcPort: port,
    dstPort: 80,
    seq: isn,
    ack: 0,
    flags,
    window: 64240,
    mss: flags === TCP_SYN ? 1460 : -1,
  });
  b.writeUInt16BE(0, 14 + 20 + 16);
  const v = new FrameView();
  expect(v.parse(b, 0, len)).toBe(FRAME_TCP);
  return v;
}

describe('park: SYN capture and dedupe', () => {
  it('parks a SYN once, absorbs its retransmits, and finishes the offloaded checksum', () => {
    const { metrics, budget, svc } = rig();
    const key = endpointKey(clientIp, 40000);
    expect(parkSegment(svc, segment(40000, 1000), key, true, budget, metrics)).toBe('parked');
    expect(parkSegment(svc, segment(40000, 1000), key, true, budget, metrics)).toBe('duplicate');
    expect(parkSegment(svc, segment(40000, 1000), key, true, budget, metrics)).toBe('duplicate');
    expect(budget.parked).toBe(1);
    expect(svc.m.duplicateSyns.value).toBe(2);
    const p = svc.parked.get(key)!;
    expect(p.isn).toBe(1000);
    expect(tcpChecksumOk(p.frame, 34, p.frame.length - 34, clientIp, svcIp)).toBe(true);
  });

  it('replaces the SYN of a reused endpoint (new ISN) without taking another slot', () => {
    const { metrics, budget, svc } = rig();
    const key = endpointKey(clientIp, 40001);
    parkSegment(svc, segment(40001, 1000), key, true, budget, metrics);
    expect(parkSegment(svc, segment(40001, 5000), key, true, budget, metrics)).toBe('parked');
    expect(budget.parked).toBe(1);
    expect(svc.parked.get(key)!.isn).toBe(5000);
  });

  it('forgets a parked SYN the client reset, and ignores other non-SYNs', () => {
    const { metrics, budget, svc } = rig();
    const key = endpointKey(clientIp, 40002);
    parkSegment(svc, segment(40002, 1000), key, true, budget, metrics);
    expect(parkSegment(svc, segment(40002, 1001, TCP_ACK), key, false, budget, metrics)).toBe('ignored');
    expect(svc.parked.size).toBe(1);
    expect(parkSegment(svc, segment(40002, 1001, TCP_RST), key, false, budget, metrics)).toBe('forgotten');
    expect(svc.parked.size).toBe(0);
    expect(budget.parked).toBe(0);
    expect(parkSegment(svc, segment(40002, 1001, TCP_RST), key, false, budget, metrics)).toBe('ignored');
  });

  it('refuses SYNs past the per-service limit and counts them', () => {
    const { metrics, budget, svc } = rig(2);
    for (const port of [41000, 41001]) expect(parkSegment(svc, segment(port, 7), endpointKey(clientIp, port), true, budget, metrics)).toBe('parked');
    expect(parkSegment(svc, segment(41002, 7), endpointKey(clientIp, 41002), true, budget, metrics)).toBe('max-parked-per-service');
    expect(svc.parked.size).toBe(2);
    expect(budget.parked).toBe(2);
    expect(metrics.counts.refused).toBe(1);
    // A retransmit of an already parked SYN is still absorbed at the limit.
    expect(parkSegment(svc, segment(41000, 7), endpointKey(clientIp, 41000), true, budget, metrics)).toBe('duplicate');
  });
});
