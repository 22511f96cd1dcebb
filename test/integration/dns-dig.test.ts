/**
 * The DNS layer against the real `dig` on loopback: a server with a static name table, and a
 * second server it forwards to.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createForwarder, type Forwarder } from '../../src/dns/forwarder.js';
import { createDnsHandler } from '../../src/dns/handler.js';
import { createDnsServer, type DnsServer } from '../../src/dns/server.js';
import { createStaticSummoner } from '../../src/dns/static-summoner.js';
import { silentLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';
import { dig, haveDig } from '../helpers/dns-dig.js';

const MANY = 60;

describe.skipIf(!haveDig)('DNS layer with dig (dnsutils)', () => {
  const metrics = new MetricsRegistry();
  let upstream: DnsServer; // the second local server, authoritative for other.test
  let forwarding: DnsServer; // jitsu.test, forwards the rest to `upstream`
  let closed: DnsServer; // jitsu.test, forwarding disabled
  let deadForwarding: DnsServer; // forwards to a port where nothing answers
  let forwarder: Forwarder;
  let deadForwarder: Forwarder;

  beforeAll(async () => {
    const jitsu = createStaticSummoner([
      { service: 'demo', names: ['demo.jitsu.test'], ipv4: ['10.0.0.1'], ipv6: ['fd00::1'], ttl: 42 },
      { service: 'many', names: ['many.jitsu.test'], ipv4: Array.from({ length: MANY }, (_, i) => `10.1.0.${i}`), ttl: 42 },
    ]);
    const other = createStaticSummoner([{ service: 'far', names: ['far.other.test'], ipv4: ['192.0.2.77'] }]);
    upstream = await createDnsServer({
      addresses: ['127.0.0.1'],
      port: 0,
      handler: createDnsHandler({ summoner: other, metrics: new MetricsRegistry(), logger: silentLogger }),
      logger: silentLogger,
      metrics: new MetricsRegistry(),
    });
    forwarder = createForwarder({ upstreams: [{ address: '127.0.0.1', port: upstream.port }], metrics, logger: silentLogger });
    forwarding = await createDnsServer({
      addresses: ['127.0.0.1', '::1'],
      port: 0,
      handler: createDnsHandler({ summoner: jitsu, forwarder, metrics, logger: silentLogger }),
      logger: silentLogger,
      metrics,
    });
    closed = await createDnsServer({
      addresses: ['127.0.0.1'],
      port: 0,
      handler: createDnsHandler({ summoner: jitsu, metrics: new MetricsRegistry(), logger: silentLogger }),
      logger: silentLogger,
      metrics: new MetricsRegistry(),
    });
    // Nothing listens on loopback port 9: every attempt times out.
    deadForwarder = createForwarder({ upstreams: [{ address: '127.0.0.1', port: 9 }], metrics: new MetricsRegistry(), logger: silentLogger, timeoutMs: 300 });
    deadForwarding = await createDnsServer({
      addresses: ['127.0.0.1'],
      port: 0,
      handler: createDnsHandler({
        summoner: jitsu,
        forwarder: deadForwarder,
        metrics: new MetricsRegistry(),
        logger: silentLogger,
      }),
      logger: silentLogger,
      metrics: new MetricsRegistry(),
    });
  });

  afterAll(async () => {
    for (const s of [forwarding, closed, upstream, deadForwarding]) await s?.close();
    await forwarder?.close();
    await deadForwarder?.close();
  });

  it('serves UDP over the native batched socket (recvmmsg/sendmmsg), which the rest of this file exercises', () => {
    for (const s of [forwarding, closed, upstream, deadForwarding]) expect(s.udpPath).toBe('native');
  });

  it('A and AAAA, authoritative, with the configured TTL', async () => {
    const a = await dig('127.0.0.1', forwarding.port, ['demo.jitsu.test', 'A']);
    expect(a.status).toBe('NOERROR');
    expect(a.flags).toContain('aa');
    expect(a.answer).toEqual([expect.stringMatching(/^demo\.jitsu\.test\.\s+42\s+IN\s+A\s+10\.0\.0\.1$/)]);
    const aaaa = await dig('::1', forwarding.port, ['demo.jitsu.test', 'AAAA']);
    expect(aaaa.answer).toEqual([expect.stringMatching(/\s42\s+IN\s+AAAA\s+fd00::1$/)]);
  });

  it('echoes the question in the case it was asked', async () => {
    const r = await dig('127.0.0.1', forwarding.port, ['DeMo.JiTsU.TeSt', 'A']);
    expect(r.question).toEqual([expect.stringMatching(/^;DeMo\.JiTsU\.TeSt\.\s+IN\s+A$/)]);
    expect(r.answer[0]).toMatch(/10\.0\.0\.1$/);
  });

  it('NODATA with the zone SOA for other types', async () => {
    const r = await dig('127.0.0.1', forwarding.port, ['demo.jitsu.test', 'MX']);
    expect(r.status).toBe('NOERROR');
    expect(r.counts.answer).toBe(0);
    expect(r.authority).toEqual([expect.stringMatching(/^jitsu\.test\.\s+42\s+IN\s+SOA\s+ns\.jitsu\.test\. hostmaster\.jitsu\.test\. \d+ 3600 600 86400 42$/)]);
  });

  it('NXDOMAIN for unknown names in our zone and REFUSED outside it, when forwarding is off', async () => {
    const nx = await dig('127.0.0.1', closed.port, ['nope.jitsu.test', 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect(nx.authority[0]).toMatch(/^jitsu\.test\.\s+60\s+IN\s+SOA/);
    const refused = await dig('127.0.0.1', closed.port, ['example.com', 'A']);
    expect(refused.status).toBe('REFUSED');
  });

  it('EDNS: OPT echoed with payload 1232 and the DO bit; none without EDNS; BADVERS for version 1', async () => {
    const plain = await dig('127.0.0.1', forwarding.port, ['demo.jitsu.test', '+dnssec']);
    expect(plain.edns).toMatch(/version: 0, flags: do; udp: 1232/);
    const noedns = await dig('127.0.0.1', forwarding.port, ['demo.jitsu.test', '+noedns']);
    expect(noedns.edns).toBeUndefined();
    expect(noedns.answer).toHaveLength(1);
    const v1 = await dig('127.0.0.1', forwarding.port, ['demo.jitsu.test', '+edns=1', '+noednsnegotiation']);
    expect(v1.status).toBe('BADVERS');
  });

  it('answers over TCP (v4 and v6)', async () => {
    for (const server of ['127.0.0.1', '::1']) {
      const r = await dig(server, forwarding.port, ['demo.jitsu.test', '+tcp']);
      expect(r.transport).toBe('TCP');
      expect(r.answer[0]).toMatch(/10\.0\.0\.1$/);
    }
  });

  it('sets TC on a UDP answer that does not fit, and dig completes it over TCP', async () => {
    const small = await dig('127.0.0.1', forwarding.port, ['many.jitsu.test', '+ignore', '+bufsize=512']);
    expect(small.flags).toContain('tc');
    expect(small.counts.answer).toBe(0);
    expect(small.question).toHaveLength(1);
    const classic = await dig('127.0.0.1', forwarding.port, ['many.jitsu.test', '+ignore', '+noedns']);
    expect(classic.flags).toContain('tc');
    const retried = await dig('127.0.0.1', forwarding.port, ['many.jitsu.test', '+bufsize=512']);
    expect(retried.output).toMatch(/Truncated, retrying in TCP mode/);
    expect(retried.answer).toHaveLength(MANY);
    const fits = await dig('127.0.0.1', forwarding.port, ['many.jitsu.test', '+bufsize=1232']);
    expect(fits.flags).not.toContain('tc');
    expect(fits.answer).toHaveLength(MANY);
  });

  it('forwards names it does not own to the second server, over UDP and TCP', async () => {
    for (const extra of [[], ['+tcp']]) {
      const r = await dig('127.0.0.1', forwarding.port, ['far.other.test', 'A', ...extra]);
      expect(r.status).toBe('NOERROR');
      expect(r.answer).toEqual([expect.stringMatching(/IN\s+A\s+192\.0\.2\.77$/)]);
    }
    const nx = await dig('127.0.0.1', forwarding.port, ['nothing.other.test', 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    // Unknown names in our own zone are forwarded too when forwarding is on: the upstream refuses.
    const ours = await dig('127.0.0.1', forwarding.port, ['nope.jitsu.test', 'A']);
    expect(ours.status).toBe('REFUSED');
    expect(metrics.render()).toMatch(/jitsu_dns_forwarded_total [4-9]/);
  });

  it('SERVFAIL when the upstream does not answer', async () => {
    const r = await dig('127.0.0.1', deadForwarding.port, ['example.com', 'A']);
    expect(r.status).toBe('SERVFAIL');
  });

  it('NOTIMP for a non-QUERY opcode', async () => {
    const r = await dig('127.0.0.1', closed.port, ['demo.jitsu.test', '+opcode=status']);
    expect(r.status).toBe('NOTIMP');
  });

  it('UDP garbage is dropped and the next query is still answered', async () => {
    const sock = dgram.createSocket('udp4');
    for (const junk of [Buffer.from('garbage'), Buffer.alloc(700, 0x3f), Buffer.from('000100000001000000000000c00c00010001', 'hex')])
      await new Promise<void>((resolve) => sock.send(junk, forwarding.port, '127.0.0.1', () => resolve()));
    sock.close();
    const r = await dig('127.0.0.1', forwarding.port, ['demo.jitsu.test', 'A']);
    expect(r.answer[0]).toMatch(/10\.0\.0\.1$/);
    expect(metrics.render()).toMatch(/jitsu_dns_malformed_total\{transport="udp"\} [1-9]/);
  });
});
