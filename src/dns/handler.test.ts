import { describe, expect, it } from 'vitest';
import { JitsuError } from '../errors.js';
import { silentLogger } from '../observe/log.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { decodeMessage, encodeMessage, type DnsMessage } from './codec.js';
import { QType, Rcode } from './constants.js';
import { createDnsHandler, type HandlerOptions } from './handler.js';
import { createStaticSummoner, type StaticService } from './static-summoner.js';
import type { Transport } from './types.js';
import { query, stubForwarder } from '../../test/helpers/dns-util.js';

const SERIAL = 1_700_000_000;

const services: StaticService[] = [
  { service: 'demo', names: ['demo.jitsu.test'], ipv4: ['10.0.0.1', '10.0.0.2'], ipv6: ['fd00::1'], ttl: 30 },
  { service: 'v6', names: ['six.jitsu.test'], ipv6: ['fd00::6'], ttl: 30 },
  { service: 'many', names: ['many.jitsu.test'], ipv4: Array.from({ length: 60 }, (_, i) => `10.1.0.${i}`), ttl: 30 },
];

function setup(opts: Partial<HandlerOptions> & { services?: StaticService[] } = {}) {
  const metrics = new MetricsRegistry();
  const summoner = createStaticSummoner(opts.services ?? services);
  const handler = createDnsHandler({ summoner, metrics, logger: silentLogger, serial: SERIAL, ttl: 60, ...opts });
  const ask = async (msg: Buffer, transport: Transport = 'udp'): Promise<DnsMessage | null> => {
    const out = await handler.handle(msg, transport);
    return out === null ? null : decodeMessage(out);
  };
  const askSync = (msg: Buffer, transport: Transport = 'udp'): DnsMessage | null => {
    const out = handler.handle(msg, transport);
    if (out instanceof Promise) throw new Error('expected a synchronous answer');
    return out === null ? null : decodeMessage(out);
  };
  return { handler, metrics, summoner, ask, askSync };
}

describe('authoritative answers for configured names', () => {
  it('answers A synchronously with AA, the configured TTL, the query ID and the question as asked', () => {
    const { askSync } = setup();
    const r = askSync(query('DeMo.JiTsU.TeSt', QType.A, { id: 4242 }))!;
    expect(r).toMatchObject({ id: 4242, qr: true, aa: true, rd: true, ra: false, rcode: Rcode.NOERROR, tc: false });
    expect(r.questions).toEqual([{ name: 'DeMo.JiTsU.TeSt', type: QType.A, class: 1 }]);
    expect(r.answers.map((a) => [a.type, a.ttl, a.data])).toEqual([
      [QType.A, 30, { kind: 'A', address: '10.0.0.1' }],
      [QType.A, 30, { kind: 'A', address: '10.0.0.2' }],
    ]);
    expect(r.authorities).toEqual([]);
  });

  it('answers AAAA and ANY', () => {
    const { askSync } = setup();
    expect(askSync(query('demo.jitsu.test', QType.AAAA))!.answers.map((a) => a.data)).toEqual([{ kind: 'AAAA', address: 'fd00::1' }]);
    expect(askSync(query('demo.jitsu.test', QType.ANY))!.answers.map((a) => a.type)).toEqual([QType.A, QType.A, QType.AAAA]);
  });

  it('answers NODATA with the SOA for other types and for a family without addresses', () => {
    const { askSync } = setup();
    for (const r of [askSync(query('demo.jitsu.test', QType.MX))!, askSync(query('six.jitsu.test', QType.A))!]) {
      expect(r).toMatchObject({ aa: true, rcode: Rcode.NOERROR });
      expect(r.answers).toEqual([]);
      expect(r.authorities).toEqual([
        {
          name: 'jitsu.test',
          type: QType.SOA,
          class: 1,
          ttl: 30,
          data: { kind: 'SOA', mname: 'ns.jitsu.test', rname: 'hostmaster.jitsu.test', serial: SERIAL, refresh: 3600, retry: 600, expire: 86400, minimum: 30 },
        },
      ]);
    }
  });

  it('echoes RD and CD, sets RA only when forwarding', () => {
    const off = setup().askSync(query('demo.jitsu.test', QType.A, { rd: false, cd: true }))!;
    expect(off).toMatchObject({ rd: false, cd: true, ra: false });
    const on = setup({ forwarder: stubForwarder((q) => q) }).askSync(query('demo.jitsu.test', QType.A))!;
    expect(on).toMatchObject({ rd: true, cd: false, ra: true });
  });

  it('serves repeats from the cache with each query own ID, flags and case', () => {
    const { askSync } = setup();
    const first = askSync(query('demo.jitsu.test', QType.A, { id: 1 }))!;
    const second = askSync(query('DEMO.jitsu.test', QType.A, { id: 2, rd: false }))!;
    expect(second).toEqual({ ...first, id: 2, rd: false, questions: [{ name: 'DEMO.jitsu.test', type: 1, class: 1 }], answers: second.answers });
    expect(second.answers.map((a) => a.data)).toEqual(first.answers.map((a) => a.data));
  });

  it('notices a changed service answer without an explicit invalidation', () => {
    const { askSync, summoner } = setup();
    expect(askSync(query('demo.jitsu.test', QType.A))!.answers).toHaveLength(2);
    const answers = (summoner as ReturnType<typeof createStaticSummoner>).answers;
    answers.set('demo.jitsu.test', { ...answers.get('demo.jitsu.test')!, ipv4: ['10.9.9.9'] });
    expect(askSync(query('demo.jitsu.test', QType.A))!.answers.map((a) => a.data)).toEqual([{ kind: 'A', address: '10.9.9.9' }]);
    answers.delete('demo.jitsu.test');
    expect(askSync(query('demo.jitsu.test', QType.A))!.rcode).toBe(Rcode.NXDOMAIN);
  });

  it('stays correct with a tiny cache bound', () => {
    const { askSync } = setup({ cacheEntries: 1 });
    for (let i = 0; i < 5; i++) {
      expect(askSync(query('demo.jitsu.test', QType.A))!.answers).toHaveLength(2);
      expect(askSync(query('demo.jitsu.test', QType.AAAA))!.answers).toHaveLength(1);
      expect(askSync(query('six.jitsu.test', QType.AAAA))!.answers).toHaveLength(1);
    }
  });
});

describe('summoning', () => {
  it('answers after ensureUp resolves, without blocking other queries, and never calls it for other types', async () => {
    let release!: () => void;
    let calls = 0;
    const booting: StaticService = {
      service: 'slow',
      names: ['slow.jitsu.test'],
      ipv4: ['10.0.0.9'],
      ensureUp: () => {
        calls++;
        return new Promise<void>((resolve) => (release = resolve));
      },
    };
    const { handler, askSync } = setup({ services: [...services, booting] });
    expect(askSync(query('slow.jitsu.test', QType.MX))!.rcode).toBe(Rcode.NOERROR);
    expect(calls).toBe(0);
    const pending = handler.handle(query('slow.jitsu.test', QType.A, { id: 99 }), 'udp');
    expect(pending).toBeInstanceOf(Promise);
    expect(calls).toBe(1);
    // Meanwhile another name is answered at once.
    expect(askSync(query('demo.jitsu.test', QType.A))!.answers).toHaveLength(2);
    release();
    const r = decodeMessage((await pending)!);
    expect(r).toMatchObject({ id: 99, aa: true, rcode: Rcode.NOERROR });
    expect(r.answers.map((a) => a.data)).toEqual([{ kind: 'A', address: '10.0.0.9' }]);
  });

  it('answers SERVFAIL when the boot fails, and counts it', async () => {
    const failing: StaticService = {
      service: 'broken',
      names: ['broken.jitsu.test'],
      ipv4: ['10.0.0.8'],
      ensureUp: () => Promise.reject(new JitsuError('BOOT_FAILED', 'exit 1')),
    };
    const { ask, metrics } = setup({ services: [failing] });
    const r = (await ask(query('broken.jitsu.test', QType.A, { edns: {} })))!;
    expect(r.rcode).toBe(Rcode.SERVFAIL);
    expect(r.answers).toEqual([]);
    expect(r.edns?.udpPayloadSize).toBe(1232);
    expect(metrics.render()).toContain('jitsu_dns_summon_failures_total 1');
  });

  it('bounds the queries waiting for a boot: the excess gets SERVFAIL at once', async () => {
    let release!: () => void;
    const booting = new Promise<void>((resolve) => (release = resolve));
    const svc: StaticService = { service: 'slow', names: ['slow.jitsu.test'], ipv4: ['10.0.0.9'], ensureUp: () => booting };
    const { handler, metrics } = setup({ services: [svc], maxPendingSummons: 3 });
    const waiting = [1, 2, 3].map((id) => handler.handle(query('slow.jitsu.test', QType.A, { id }), 'udp'));
    for (const w of waiting) expect(w).toBeInstanceOf(Promise);
    const refused = handler.handle(query('slow.jitsu.test', QType.A, { id: 4 }), 'udp');
    expect(decodeMessage(refused as Buffer).rcode).toBe(Rcode.SERVFAIL);
    expect(metrics.render()).toContain('jitsu_dns_summon_overload_total 1');
    release();
    for (const w of await Promise.all(waiting)) expect(decodeMessage(w!).answers).toHaveLength(1);
    // The slots are free again.
    expect(await handler.handle(query('slow.jitsu.test', QType.A, { id: 5 }), 'udp')).not.toBeNull();
  });

  it('calls ensureUp on every cached A answer (the service layer tracks use)', () => {
    let calls = 0;
    const svc: StaticService = { service: 's', names: ['s.jitsu.test'], ipv4: ['10.0.0.3'], ensureUp: () => (calls++, true) };
    const { askSync } = setup({ services: [svc] });
    for (let i = 0; i < 3; i++) askSync(query('s.jitsu.test', QType.A));
    expect(calls).toBe(3);
  });
});

describe('names without a service', () => {
  it('NXDOMAIN + SOA inside a zone when forwarding is off', () => {
    const r = setup().askSync(query('nope.jitsu.test', QType.A))!;
    expect(r).toMatchObject({ aa: true, rcode: Rcode.NXDOMAIN });
    expect(r.authorities.map((a) => [a.name, a.type, a.ttl])).toEqual([['jitsu.test', QType.SOA, 60]]);
  });

  it('the zone apex: SOA for SOA queries, NODATA otherwise', () => {
    const { askSync } = setup();
    const soa = askSync(query('jitsu.test', QType.SOA))!;
    expect(soa).toMatchObject({ aa: true, rcode: Rcode.NOERROR });
    expect(soa.answers.map((a) => a.type)).toEqual([QType.SOA]);
    const a = askSync(query('jitsu.test', QType.A))!;
    expect(a).toMatchObject({ rcode: Rcode.NOERROR, answers: [] });
    expect(a.authorities.map((x) => x.type)).toEqual([QType.SOA]);
  });

  it('REFUSED outside our zones when forwarding is off (also for other classes)', () => {
    const { askSync } = setup();
    expect(askSync(query('example.com', QType.A))).toMatchObject({ rcode: Rcode.REFUSED, aa: false, answers: [] });
    expect(askSync(query('demo.jitsu.test', QType.A, { klass: 3 }))!.rcode).toBe(Rcode.REFUSED);
  });

  it('forwards names outside and unknown names inside our zones when forwarding is on', async () => {
    const fwd = stubForwarder((q) => ({
      ...q,
      qr: true,
      ra: true,
      answers: [{ name: q.questions[0]!.name, type: 1, class: 1, ttl: 5, data: { kind: 'A', address: '192.0.2.1' } }],
    }));
    const { ask } = setup({ forwarder: fwd });
    for (const name of ['example.com', 'nope.jitsu.test']) {
      const r = (await ask(query(name, QType.A, { id: 555 })))!;
      expect(r).toMatchObject({ id: 555, rcode: Rcode.NOERROR, aa: false });
      expect(r.answers.map((a) => a.data)).toEqual([{ kind: 'A', address: '192.0.2.1' }]);
    }
    expect(fwd.calls).toBe(2);
    // Configured names are never forwarded.
    await ask(query('demo.jitsu.test', QType.TXT));
    expect(fwd.calls).toBe(2);
  });

  it('SERVFAIL when the upstream fails', async () => {
    const fwd = stubForwarder(() => new JitsuError('UPSTREAM_FAILED', 'timeout', { reason: 'timeout' }));
    const r = (await setup({ forwarder: fwd }).ask(query('example.com', QType.A)))!;
    expect(r.rcode).toBe(Rcode.SERVFAIL);
    expect(r.questions[0]!.name).toBe('example.com');
  });

  it('truncates a forwarded reply that does not fit the client datagram', async () => {
    const fwd = stubForwarder((q) => ({
      ...q,
      qr: true,
      answers: Array.from({ length: 40 }, (_, i) => ({ name: 'big.example', type: 1, class: 1, ttl: 5, data: { kind: 'A' as const, address: `192.0.2.${i}` } })),
    }));
    const { ask } = setup({ forwarder: fwd });
    const udp = (await ask(query('big.example', QType.A)))!;
    expect(udp).toMatchObject({ tc: true, answers: [] });
    const tcp = (await ask(query('big.example', QType.A), 'tcp'))!;
    expect(tcp.answers).toHaveLength(40);
  });
});

describe('protocol rules', () => {
  it('NOTIMP for non-QUERY opcodes', () => {
    const r = setup().askSync(query('demo.jitsu.test', QType.A, { opcode: 2 }))!;
    expect(r).toMatchObject({ qr: true, opcode: 2, rcode: Rcode.NOTIMP, answers: [] });
  });

  it('FORMERR for zero or several questions and for two OPT records', () => {
    const { askSync } = setup();
    const two = query('demo.jitsu.test', QType.A);
    const m = decodeMessage(two);
    m.questions.push({ name: 'six.jitsu.test', type: 1, class: 1 });
    expect(askSync(encodeMessage(m))!.rcode).toBe(Rcode.FORMERR);
    m.questions = [];
    expect(askSync(encodeMessage(m))!.rcode).toBe(Rcode.FORMERR);
    const withOpt = query('demo.jitsu.test', QType.A, { edns: {} });
    const opt = withOpt.subarray(withOpt.length - 11);
    const doubled = Buffer.concat([withOpt, opt]);
    doubled.writeUInt16BE(2, 10);
    expect(askSync(doubled)!.rcode).toBe(Rcode.FORMERR);
  });

  it('drops responses and malformed messages, counting both', () => {
    const { handler, metrics } = setup();
    const response = query('demo.jitsu.test', QType.A);
    response[2]! |= 0x80;
    expect(handler.handle(response, 'udp')).toBeNull();
    expect(handler.handle(Buffer.from([1, 2, 3]), 'udp')).toBeNull();
    const bad = query('demo.jitsu.test', QType.A);
    expect(handler.handle(bad.subarray(0, bad.length - 3), 'tcp')).toBeNull();
    const text = metrics.render();
    expect(text).toContain('jitsu_dns_responses_received_total 1');
    expect(text).toContain('jitsu_dns_malformed_total{transport="udp"} 1');
    expect(text).toContain('jitsu_dns_malformed_total{transport="tcp"} 1');
  });

  it('counts answers by transport and rcode', () => {
    const { askSync, metrics } = setup();
    askSync(query('demo.jitsu.test', QType.A));
    askSync(query('demo.jitsu.test', QType.A));
    askSync(query('nope.jitsu.test', QType.A), 'tcp');
    const text = metrics.render();
    expect(text).toContain('jitsu_dns_queries_total{transport="udp",rcode="NOERROR"} 2');
    expect(text).toContain('jitsu_dns_queries_total{transport="tcp",rcode="NXDOMAIN"} 1');
  });
});

describe('EDNS(0)', () => {
  it('echoes OPT with our payload size and the DO bit only when the query had OPT', () => {
    const { askSync } = setup();
    expect(askSync(query('demo.jitsu.test', QType.A))!.edns).toBeUndefined();
    expect(askSync(query('demo.jitsu.test', QType.A, { edns: { udpPayloadSize: 4096 } }))!.edns).toEqual({
      udpPayloadSize: 1232,
      version: 0,
      dnssecOk: false,
      options: [],
    });
    expect(askSync(query('demo.jitsu.test', QType.A, { edns: { dnssecOk: true } }))!.edns?.dnssecOk).toBe(true);
    expect(askSync(query('nope.jitsu.test', QType.A, { edns: {} }))!.edns?.udpPayloadSize).toBe(1232);
    expect(askSync(query('example.com', QType.A, { edns: {} }))!.edns?.udpPayloadSize).toBe(1232);
  });

  it('BADVERS for EDNS version > 0', () => {
    const r = setup().askSync(query('demo.jitsu.test', QType.A, { edns: { version: 1 } }))!;
    expect(r.rcode).toBe(Rcode.BADVERS);
    expect(r.edns?.version).toBe(0);
    expect(r.answers).toEqual([]);
  });

  it('truncates UDP answers beyond 512 octets without EDNS, or beyond the advertised size', () => {
    const { askSync, metrics } = setup();
    const plain = askSync(query('many.jitsu.test', QType.A))!;
    expect(plain).toMatchObject({ tc: true, aa: true, answers: [], questions: [{ name: 'many.jitsu.test', type: 1, class: 1 }] });
    const small = askSync(query('many.jitsu.test', QType.A, { edns: { udpPayloadSize: 512 } }))!;
    expect(small.tc).toBe(true);
    expect(small.edns?.udpPayloadSize).toBe(1232);
    const large = askSync(query('many.jitsu.test', QType.A, { edns: { udpPayloadSize: 1232 } }))!;
    expect(large).toMatchObject({ tc: false });
    expect(large.answers).toHaveLength(60);
    expect(askSync(query('many.jitsu.test', QType.A), 'tcp')!.answers).toHaveLength(60);
    expect(metrics.render()).toContain('jitsu_dns_truncated_total 2');
  });
});

describe('robustness', () => {
  it('a service layer that throws, or an answer too big for any transport, costs one SERVFAIL', () => {
    const throwing: StaticService = {
      service: 'buggy',
      names: ['buggy.jitsu.test'],
      ipv4: ['10.0.0.1'],
      ensureUp: () => {
        throw new Error('bug');
      },
    };
    const huge: StaticService = { service: 'huge', names: ['huge.jitsu.test'], ipv4: Array.from({ length: 5000 }, (_, i) => `10.2.${i >> 8}.${i & 255}`) };
    const { askSync } = setup({ services: [throwing, huge] });
    expect(askSync(query('buggy.jitsu.test', QType.A))!.rcode).toBe(Rcode.SERVFAIL);
    expect(askSync(query('huge.jitsu.test', QType.A), 'tcp')!.rcode).toBe(Rcode.SERVFAIL);
    expect(askSync(query('huge.jitsu.test', QType.MX), 'tcp')!.rcode).toBe(Rcode.NOERROR);
  });

  it('10k mutated queries: the handler never throws and every reply it sends decodes', async () => {
    let seed = 99;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const fwd = stubForwarder((q) => ({ ...q, qr: true }));
    const { handler } = setup({ forwarder: fwd });
    const seeds = [
      query('demo.jitsu.test', QType.A, { edns: { dnssecOk: true } }),
      query('many.jitsu.test', QType.A),
      query('nope.jitsu.test', QType.MX, { edns: { udpPayloadSize: 512 } }),
      query('example.com', QType.AAAA),
    ];
    let replies = 0;
    const pending: Promise<Buffer | null>[] = [];
    for (let i = 0; i < 10_000; i++) {
      let buf = Buffer.from(seeds[i % seeds.length]!);
      for (let m = 0, n = 1 + rand(3); m < n; m++) {
        const op = rand(3);
        if (op === 0) buf[rand(buf.length)] = rand(256);
        else if (op === 1) buf = buf.subarray(0, rand(buf.length + 1));
        else buf = Buffer.concat([buf, Buffer.from([rand(256)])]);
      }
      const out = handler.handle(buf, i % 2 ? 'udp' : 'tcp');
      if (out instanceof Promise) pending.push(out);
      else if (out !== null) {
        replies++;
        const r = decodeMessage(out);
        expect(r.qr).toBe(true);
        expect(r.id).toBe(buf.readUInt16BE(0));
        if (i % 2 === 1) expect(out.length).toBeLessThanOrEqual(1232);
      }
    }
    for (const out of await Promise.all(pending)) if (out !== null) decodeMessage(out);
    expect(replies).toBeGreaterThan(1000);
  });
});
