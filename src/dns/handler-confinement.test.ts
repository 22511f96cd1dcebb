/** The handler's confinement: who may have names forwarded (--allow-forward), and RRL of our answers. */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../observe/log.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { decodeMessage } from './codec.js';
import { QType, Rcode } from './constants.js';
import { createDnsHandler } from './handler.js';
import { ResponseRateLimiter } from './rrl.js';
import { AddressSet, sourceFromText } from './source.js';
import { createStaticSummoner } from './static-summoner.js';
import { query, stubForwarder } from '../../test/helpers/dns-util.js';

const summoner = createStaticSummoner([{ service: 'www', names: ['www.jitsu.test'], ipv4: ['10.0.0.1'], ttl: 30 }]);

/** Answers every forwarded question with 198.51.100.1. */
function echoForwarder(): ReturnType<typeof stubForwarder> {
  return stubForwarder((m) => ({ ...m, qr: true, ra: true, answers: [{ name: m.questions[0]!.name, type: QType.A, class: 1, ttl: 5, data: { kind: 'A', address: '198.51.100.1' } }] }));
}

// Created once: each keeps its arrival time, so the RRL loops below run within one instant.
const local = sourceFromText('127.0.0.1');
const lan = sourceFromText('10.77.0.9');
const outsider = sourceFromText('203.0.113.5');

describe('--allow-forward: no open resolver', () => {
  const setup = () => {
    const metrics = new MetricsRegistry();
    const forwarder = echoForwarder();
    const handler = createDnsHandler({ summoner, forwarder, metrics, logger: silentLogger, allowForward: new AddressSet(['127.0.0.0/8', '10.77.0.0/24']) });
    return { handler, forwarder, metrics };
  };

  it('forwards for clients inside, refuses (never forwards) for clients outside', async () => {
    const { handler, forwarder, metrics } = setup();
    for (const s of [local, lan]) {
      const r = decodeMessage((await handler.handle(query('example.com', QType.A), 'udp', s))!);
      expect(r.rcode).toBe(Rcode.NOERROR);
      expect(r.answers).toHaveLength(1);
    }
    const refused = handler.handle(query('example.com', QType.A), 'udp', outsider);
    expect(refused).toBeInstanceOf(Buffer); // at once, no upstream round trip
    expect(decodeMessage(refused as Buffer).rcode).toBe(Rcode.REFUSED);
    expect(decodeMessage(handler.handle(query('example.com', QType.A), 'tcp', outsider) as Buffer).rcode).toBe(Rcode.REFUSED);
    expect(forwarder.calls).toBe(2);
    expect(metrics.render()).toMatch(/jitsu_dns_forward_refused_total 2/);
  });

  it('still answers our own names for clients outside, and NXDOMAIN inside our zones', () => {
    const { handler, forwarder } = setup();
    const own = decodeMessage(handler.handle(query('www.jitsu.test', QType.A), 'udp', outsider) as Buffer);
    expect(own).toMatchObject({ rcode: Rcode.NOERROR, aa: true });
    expect(own.answers.map((a) => a.data)).toEqual([{ kind: 'A', address: '10.0.0.1' }]);
    const inZone = decodeMessage(handler.handle(query('nope.jitsu.test', QType.A), 'udp', outsider) as Buffer);
    expect(inZone.rcode).toBe(Rcode.NXDOMAIN);
    expect(forwarder.calls).toBe(0);
  });
});

describe('RRL of our own answers', () => {
  const setup = (slip: number) => {
    const metrics = new MetricsRegistry();
    const rrl = new ResponseRateLimiter({ rate: 10, slip });
    const handler = createDnsHandler({ summoner, metrics, logger: silentLogger, rrl });
    return { handler, metrics };
  };

  it('answers `rate` per second per prefix, then slips every 2nd (TC=1, no records) and drops the rest', () => {
    const { handler, metrics } = setup(2);
    let answered = 0;
    let slipped = 0;
    let dropped = 0;
    for (let i = 0; i < 110; i++) {
      const out = handler.handle(query('www.jitsu.test', QType.A, { id: i }), 'udp', outsider);
      if (out === null) dropped++;
      else {
        const m = decodeMessage(out as Buffer);
        expect(m.id).toBe(i);
        if (m.tc) {
          expect(m.answers).toEqual([]);
          expect(m.aa).toBe(true);
          slipped++;
        } else answered++;
      }
    }
    expect({ answered, slipped, dropped }).toEqual({ answered: 10, slipped: 50, dropped: 50 });
    expect(metrics.render()).toMatch(/jitsu_dns_rrl_limited_total 100/);
    expect(metrics.render()).toMatch(/jitsu_dns_rrl_slipped_total 50/);
  });

  it('never limits TCP, loopback, another prefix or in-process callers', () => {
    const { handler } = setup(0);
    for (let i = 0; i < 20; i++) handler.handle(query('www.jitsu.test', QType.A), 'udp', outsider);
    expect(handler.handle(query('www.jitsu.test', QType.A), 'udp', outsider)).toBeNull();
    const tcp = handler.handle(query('www.jitsu.test', QType.A), 'tcp', outsider) as Buffer;
    expect(decodeMessage(tcp).answers).toHaveLength(1);
    for (let i = 0; i < 50; i++) expect(handler.handle(query('www.jitsu.test', QType.A), 'udp', local)).not.toBeNull();
    expect(handler.handle(query('www.jitsu.test', QType.A), 'udp', sourceFromText('203.0.114.5'))).not.toBeNull();
    expect(handler.handle(query('www.jitsu.test', QType.A), 'udp')).not.toBeNull();
  });
});
