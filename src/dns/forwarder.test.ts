import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { errorCode } from '../errors.js';
import { silentLogger } from '../observe/log.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { decodeMessage } from './codec.js';
import { QType } from './constants.js';
import { createForwarder, parseResolvConf, resolveUpstreams, withoutSelf, type Forwarder, type ForwarderOptions } from './forwarder.js';
import { query } from '../../test/helpers/dns-util.js';
import { answer, startUpstream, type Upstream } from '../../test/helpers/dns-upstream.js';

const QUESTION_END = (q: Buffer): number => 12 + (decodeMessage(q).questions[0]!.name.length + 2) + 4;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function upstream(...args: Parameters<typeof startUpstream>): Promise<Upstream> {
  const up = await startUpstream(...args);
  cleanup.push(() => up.close());
  return up;
}

function forwarder(up: Upstream | Upstream[], opts: Partial<ForwarderOptions> = {}): { fwd: Forwarder; metrics: MetricsRegistry } {
  const metrics = new MetricsRegistry();
  const ups = Array.isArray(up) ? up : [up];
  const fwd = createForwarder({
    upstreams: ups.map((u) => ({ address: u.address, port: u.port })),
    metrics,
    logger: silentLogger,
    timeoutMs: 300,
    ...opts,
  });
  cleanup.push(() => fwd.close());
  return { fwd, metrics };
}

async function failureReason(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    expect(errorCode(err)).toBe('UPSTREAM_FAILED');
    return (err as { details: { reason: unknown } }).details.reason;
  }
  throw new Error('expected the forward to fail');
}

describe('forwarder', () => {
  it('forwards with a fresh random ID and source port, and restores the client ID', async () => {
    const up = await upstream();
    const { fwd } = forwarder(up, { socketUses: 4, poolSize: 4 });
    const q = query('example.com', QType.A, { id: 0xabcd });
    const replies = await Promise.all(Array.from({ length: 60 }, () => fwd.forward(q, QUESTION_END(q))));
    for (const r of replies) {
      const m = decodeMessage(r);
      expect(m.id).toBe(0xabcd);
      expect(m.answers[0]!.data).toEqual({ kind: 'A', address: '192.0.2.1' });
    }
    const ids = new Set(up.received.map((r) => r.id));
    const ports = new Set(up.received.map((r) => r.port));
    expect(up.received).toHaveLength(60);
    expect(ids.size).toBeGreaterThan(50);
    expect(ids.has(0xabcd)).toBe(false);
    expect(ports.size).toBeGreaterThanOrEqual(8);
    expect(fwd.outstanding()).toBe(0);
  });

  it('ignores replies with the wrong ID, question or source, and takes the right one', async () => {
    const stranger = dgram.createSocket('udp4');
    cleanup.push(() => new Promise((resolve) => stranger.close(() => resolve())));
    const up = await upstream('127.0.0.1', (q, send) => {
      const good = answer(q);
      const wrongId = Buffer.from(good);
      wrongId.writeUInt16BE((q.id + 1) & 0xffff, 0);
      const wrongQuestion = answer(q, (m) => (m.questions = [{ name: 'other.com', type: 1, class: 1 }]));
      const notResponse = Buffer.from(good);
      notResponse[2]! &= 0x7f;
      send(wrongId);
      send(wrongQuestion);
      send(notResponse);
      stranger.send(good, q.port, '127.0.0.1'); // right bytes, wrong source port
      setTimeout(() => send(good), 50);
      return null;
    });
    const { fwd, metrics } = forwarder(up);
    const q = query('Example.COM', QType.A, { id: 7 });
    const r = decodeMessage(await fwd.forward(q, QUESTION_END(q)));
    expect(r.id).toBe(7);
    expect(r.answers).toHaveLength(1);
    expect(metrics.render()).toContain('jitsu_dns_upstream_mismatched_total 4');
  });

  it('accepts the question echoed in another case (0x20 is compared case-insensitively)', async () => {
    const up = await upstream('127.0.0.1', (q) => answer(q, (m) => (m.questions[0]!.name = m.questions[0]!.name.toUpperCase())));
    const { fwd } = forwarder(up);
    const q = query('example.com', QType.A);
    expect(decodeMessage(await fwd.forward(q, QUESTION_END(q))).answers).toHaveLength(1);
  });

  it('retries once on timeout with a new ID, then fails with reason timeout', async () => {
    const up = await upstream('127.0.0.1', () => null);
    const { fwd, metrics } = forwarder(up, { timeoutMs: 150 });
    const q = query('example.com', QType.A);
    const t0 = Date.now();
    expect(await failureReason(fwd.forward(q, QUESTION_END(q)))).toBe('timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(up.received).toHaveLength(2);
    expect(up.received[0]!.id).not.toBe(up.received[1]!.id);
    expect(metrics.render()).toContain('jitsu_dns_upstream_timeouts_total 2');
    expect(metrics.render()).toContain('jitsu_dns_upstream_failures_total{reason="timeout"} 1');
  });

  it('succeeds on the retry when the first attempt is lost', async () => {
    let n = 0;
    const up = await upstream('127.0.0.1', (q) => (n++ === 0 ? null : answer(q)));
    const { fwd } = forwarder(up, { timeoutMs: 150 });
    const q = query('example.com', QType.A);
    expect(decodeMessage(await fwd.forward(q, QUESTION_END(q))).answers).toHaveLength(1);
    expect(up.received).toHaveLength(2);
  });

  it('retries over TCP when the UDP reply is truncated', async () => {
    const up = await upstream('127.0.0.1', (q) =>
      q.transport === 'udp'
        ? answer(q, (m) => ((m.tc = true), (m.answers = [])))
        : answer(q, (m) => {
            m.answers = Array.from({ length: 50 }, (_, i) => ({ name: 'big.example', type: 1, class: 1, ttl: 5, data: { kind: 'A' as const, address: `192.0.2.${i}` } }));
          }),
    );
    const { fwd, metrics } = forwarder(up);
    const q = query('big.example', QType.A, { id: 31 });
    const r = decodeMessage(await fwd.forward(q, QUESTION_END(q)));
    expect(r).toMatchObject({ id: 31, tc: false });
    expect(r.answers).toHaveLength(50);
    expect(up.received.map((x) => x.transport)).toEqual(['udp', 'tcp']);
    expect(metrics.render()).toContain('jitsu_dns_upstream_tcp_retries_total 1');
  });

  it('bounds the queries in flight: the excess fails at once', async () => {
    const up = await upstream('127.0.0.1', () => null);
    const { fwd, metrics } = forwarder(up, { maxOutstanding: 2, timeoutMs: 200, retries: 0 });
    const q = query('example.com', QType.A);
    const a = fwd.forward(q, QUESTION_END(q));
    const b = fwd.forward(q, QUESTION_END(q));
    expect(fwd.outstanding()).toBe(2);
    expect(await failureReason(fwd.forward(q, QUESTION_END(q)))).toBe('overload');
    expect(await failureReason(a)).toBe('timeout');
    expect(await failureReason(b)).toBe('timeout');
    expect(metrics.render()).toContain('jitsu_dns_upstream_failures_total{reason="overload"} 1');
  });

  it('forwards to an IPv6 upstream', async () => {
    const up = await upstream('::1');
    const { fwd } = forwarder(up);
    const q = query('example.com', QType.AAAA);
    expect(decodeMessage(await fwd.forward(q, QUESTION_END(q))).answers).toHaveLength(1);
  });

  it('fails pending queries when closed', async () => {
    const up = await upstream('127.0.0.1', () => null);
    const { fwd } = forwarder(up, { timeoutMs: 5000 });
    const q = query('example.com', QType.A);
    const p = fwd.forward(q, QUESTION_END(q));
    await new Promise((r) => setTimeout(r, 20));
    await fwd.close();
    expect(await failureReason(p)).toBe('closed');
  });
});

describe('upstream list', () => {
  it('parses nameserver lines from resolv.conf', () => {
    expect(parseResolvConf('# c\nsearch x\nnameserver 9.9.9.9\n nameserver   2620:fe::fe \nnameserver bogus\noptions ndots:2\n')).toEqual([
      '9.9.9.9',
      '2620:fe::fe',
    ]);
  });

  it('uses resolv.conf when no forwarder is given; 0.0.0.0 disables forwarding', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitsu-dns-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const conf = join(dir, 'resolv.conf');
    writeFileSync(conf, 'nameserver 192.0.2.53\nnameserver ::1\n');
    expect(resolveUpstreams({ resolvConfPath: conf, port: 5300 })).toEqual([
      { address: '192.0.2.53', port: 5300 },
      { address: '::1', port: 5300 },
    ]);
    expect(resolveUpstreams({ forwarder: '0.0.0.0', resolvConfPath: conf })).toEqual([]);
    expect(resolveUpstreams({ forwarder: '198.51.100.1,0:0::1' })).toEqual([
      { address: '198.51.100.1', port: 53 },
      { address: '::1', port: 53 },
    ]);
    writeFileSync(conf, 'nameserver 0.0.0.0\n');
    expect(resolveUpstreams({ resolvConfPath: conf })).toEqual([]);
    expect(resolveUpstreams({ resolvConfPath: join(dir, 'missing') })).toEqual([]);
    expect(() => resolveUpstreams({ forwarder: 'dns.example' })).toThrow(/not an IP address/);
  });

  it('drops upstreams that are our own listeners', () => {
    const ups = [
      { address: '127.0.0.1', port: 53 },
      { address: '127.0.0.53', port: 53 },
      { address: '192.0.2.1', port: 53 },
      { address: '::1', port: 5353 },
    ];
    expect(withoutSelf(ups, [{ address: '127.0.0.1', port: 53 }])).toEqual(ups.slice(1));
    expect(withoutSelf(ups, [{ address: '0.0.0.0', port: 53 }])).toEqual([ups[2], ups[3]]);
    expect(withoutSelf(ups, [{ address: '0:0::1', port: 5353 }])).toEqual(ups.slice(0, 3));
  });
});
