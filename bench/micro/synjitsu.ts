/** Micro tasks for Synjitsu's packet path: frame parse/build, ARP reply, SYN cookies, flow and park tables. */
import { writeArpReply, ARP_FRAME } from '../../src/synjitsu/pdu/arp.js';
import { parseMac, writeEthernet, ETHERTYPE_ARP } from '../../src/synjitsu/pdu/ethernet.js';
import { FrameView } from '../../src/synjitsu/pdu/frame.js';
import { parseIpv4 } from '../../src/synjitsu/pdu/ipv4.js';
import { TCP_ACK, TCP_RST, TCP_SYN, writeTcpFrame, type SegmentSpec } from '../../src/synjitsu/pdu/tcp.js';
import { SynCookies } from '../../src/synjitsu/cookies.js';
import { endpointKey, FlowBudget } from '../../src/synjitsu/flowtable.js';
import { DEFAULT_LIMITS, resolveLimits } from '../../src/synjitsu/limits.js';
import { SynjitsuMetrics } from '../../src/synjitsu/metrics.js';
import { parkSegment } from '../../src/synjitsu/park.js';
import { newService } from '../../src/synjitsu/state.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';
import { blackhole, type MicroTask } from './suite.js';

const BATCH = 1000;

export function synjitsuTasks(): MicroTask[] {
  const client = parseMac('02:00:00:20:50:01');
  const guest = parseMac('02:00:00:20:50:02');
  const clientIp = parseIpv4('10.205.1.250');
  const guestIp = parseIpv4('10.205.1.10');
  const syn: SegmentSpec = {
    srcMac: client,
    dstMac: guest,
    srcIp: clientIp,
    dstIp: guestIp,
    srcPort: 40000,
    dstPort: 80,
    seq: 123456789,
    ack: 0,
    flags: TCP_SYN,
    window: 64240,
    mss: 1460,
    wscale: 7,
    sackPermitted: true,
  };
  const synFrame = Buffer.alloc(128);
  const synLen = writeTcpFrame(synFrame, 0, syn);
  const out = Buffer.alloc(2048);
  const view = new FrameView();
  const synAck: SegmentSpec = { ...syn, srcMac: guest, dstMac: client, srcIp: guestIp, dstIp: clientIp, srcPort: 80, dstPort: 40000, flags: TCP_SYN | TCP_ACK, ack: 123456790 };

  const arpRequest = Buffer.alloc(ARP_FRAME);
  const p = writeEthernet(arpRequest, 0, parseMac('ff:ff:ff:ff:ff:ff'), client, ETHERTYPE_ARP);
  arpRequest.writeUInt16BE(1, p);
  arpRequest.writeUInt16BE(0x0800, p + 2);
  arpRequest[p + 4] = 6;
  arpRequest[p + 5] = 4;
  arpRequest.writeUInt16BE(1, p + 6);
  arpRequest.set(client, p + 8);
  arpRequest.writeUInt32BE(clientIp, p + 14);
  arpRequest.writeUInt32BE(guestIp, p + 24);

  const cookies = new SynCookies(Buffer.alloc(16, 7), () => 1_000_000);
  const budget = new FlowBudget({ ...DEFAULT_LIMITS });
  const flows = new Map<number, { seq: number }>();
  // The real park table of a booting service (src/synjitsu/park.ts), with a SYN and the client's RST.
  const parkMetrics = new SynjitsuMetrics(new MetricsRegistry());
  const parkBudget = new FlowBudget(resolveLimits({}));
  const parkSvc = newService({ service: 'bench', ip: '10.205.1.10', mask: 'park', mac: '02:00:00:20:50:02' }, guestIp, guest, 'booting', parkMetrics.forService('bench'));
  const synView = new FrameView();
  synView.parse(synFrame, 0, synLen);
  const rstFrame = Buffer.alloc(128);
  const rstLen = writeTcpFrame(rstFrame, 0, { ...syn, flags: TCP_RST, mss: -1, wscale: -1, sackPermitted: false });
  const rstView = new FrameView();
  rstView.parse(rstFrame, 0, rstLen);

  let sink = 0;
  blackhole.keep = () => sink;

  return [
    {
      name: 'pdu FrameView.parse (TCP SYN)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) sink += view.parse(synFrame, 0, synLen);
      },
    },
    {
      name: 'pdu writeTcpFrame (SYN-ACK + options + checksum)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          synAck.seq = i;
          sink += writeTcpFrame(out, 0, synAck);
        }
      },
    },
    {
      name: 'pdu writeArpReply',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) sink += writeArpReply(out, 0, arpRequest, 0, guestIp, guest);
      },
    },
    {
      name: 'cookie make + check',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          const isn = cookies.make(clientIp, 40000 + (i & 1023), guestIp, 80, i, 1460, 7);
          if (cookies.check(clientIp, 40000 + (i & 1023), guestIp, 80, i, isn)) sink++;
        }
      },
    },
    {
      name: 'flow table (FlowBudget + Map by endpointKey): admit, insert, lookup, remove (per flow)',
      batch: BATCH,
      fn: () => {
        // A table holding ~1000 flows, churned: the shape of a booting service's held connections.
        for (let i = 0; i < BATCH; i++) {
          const key = endpointKey(clientIp + (i & 15), 1024 + i);
          if (budget.admitFlow(flows.size) === undefined) flows.set(key, { seq: i });
          const f = flows.get(key);
          if (f) sink += f.seq;
        }
        for (let i = 0; i < BATCH; i++) {
          if (flows.delete(endpointKey(clientIp + (i & 15), 1024 + i))) budget.releaseFlow();
        }
      },
    },
    {
      name: 'park table: park SYN + duplicate SYN + forget on RST (per flow)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          const key = endpointKey(clientIp, 1024 + i);
          if (parkSegment(parkSvc, synView, key, true, parkBudget, parkMetrics) === 'parked') sink++;
          if (parkSegment(parkSvc, synView, key, true, parkBudget, parkMetrics) === 'duplicate') sink++;
          if (parkSegment(parkSvc, rstView, key, false, parkBudget, parkMetrics) === 'forgotten') sink++;
        }
      },
    },
  ];
}
