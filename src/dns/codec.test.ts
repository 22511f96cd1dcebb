import { describe, expect, it } from 'vitest';
import { errorCode } from '../errors.js';
import { formatIpv6, writeIpv6 } from './address.js';
import { decodeMessage, decodeName, encodeMessage, nameToLabels, type DnsMessage } from './codec.js';
import { QType } from './constants.js';
import { ParsedQuery, parseQuery } from './query.js';
import { hex, query } from '../../test/helpers/dns-util.js';

function expectMalformed(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected DNS_MALFORMED').toBeDefined();
  expect(errorCode(thrown)).toBe('DNS_MALFORMED');
}

const HEADER_Q1 = '1234 0100 0001 0000 0000 0000';

function message(over: Partial<DnsMessage>): DnsMessage {
  return {
    id: 7,
    qr: true,
    opcode: 0,
    aa: true,
    tc: false,
    rd: true,
    ra: false,
    ad: false,
    cd: false,
    rcode: 0,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
    ...over,
  };
}

describe('codec round trips', () => {
  it('encodes and decodes every supported record type', () => {
    const m = message({
      questions: [{ name: 'demo.jitsu.test', type: QType.A, class: 1 }],
      answers: [
        { name: 'demo.jitsu.test', type: QType.A, class: 1, ttl: 60, data: { kind: 'A', address: '10.0.0.1' } },
        { name: 'demo.jitsu.test', type: QType.AAAA, class: 1, ttl: 60, data: { kind: 'AAAA', address: 'fd00::1' } },
        { name: 'alias.jitsu.test', type: QType.CNAME, class: 1, ttl: 5, data: { kind: 'CNAME', host: 'demo.jitsu.test' } },
        { name: 'x.test', type: 99, class: 1, ttl: 1, data: { kind: 'RAW', bytes: Uint8Array.from([1, 2, 3]) } },
      ],
      authorities: [
        { name: 'jitsu.test', type: QType.NS, class: 1, ttl: 60, data: { kind: 'NS', host: 'ns.jitsu.test' } },
        {
          name: 'jitsu.test',
          type: QType.SOA,
          class: 1,
          ttl: 60,
          data: { kind: 'SOA', mname: 'ns.jitsu.test', rname: 'hostmaster.jitsu.test', serial: 4294967295, refresh: 1, retry: 2, expire: 3, minimum: 60 },
        },
      ],
      edns: { udpPayloadSize: 1232, version: 0, dnssecOk: true, options: [{ code: 10, data: Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9]) }] },
      rcode: 16,
    });
    const wire = encodeMessage(m);
    const back = decodeMessage(wire);
    expect(back).toEqual(m);
    expect(back.rcode).toBe(16);
    expect(back.edns?.dnssecOk).toBe(true);
  });

  it('keeps the case of names as sent (0x20)', () => {
    const back = decodeMessage(query('DeMo.JITSU.test', QType.A));
    expect(back.questions[0]!.name).toBe('DeMo.JITSU.test');
  });

  it('compresses repeated suffixes case-insensitively', () => {
    const answers = Array.from({ length: 10 }, (_, i) => ({
      name: 'DEMO.jitsu.test',
      type: QType.A,
      class: 1,
      ttl: 60,
      data: { kind: 'A' as const, address: `10.0.0.${i}` },
    }));
    const wire = encodeMessage(message({ questions: [{ name: 'demo.jitsu.test', type: 1, class: 1 }], answers }));
    // header 12 + question (17 + 4) + 10 x (2 pointer + 10 + 4)
    expect(wire.length).toBe(12 + 21 + 10 * 16);
    expect(wire.readUInt16BE(33)).toBe(0xc00c);
    const back = decodeMessage(wire);
    expect(back.answers.map((a) => a.name)).toEqual(Array(10).fill('demo.jitsu.test'));
  });

  it('escapes dots, backslashes and binary bytes inside labels and parses them back', () => {
    const wire = hex(`${HEADER_Q1} 03 612e62 02 5c00 00 0001 0001`);
    const { name } = decodeName(wire, 12);
    expect(name).toBe('a\\.b.\\\\\\000');
    const labels = nameToLabels(name);
    expect(labels.map((l) => Buffer.from(l).toString('hex'))).toEqual(['612e62', '5c00']);
  });

  it('handles the root name', () => {
    const q = query('', QType.NS);
    expect(q.length).toBe(12 + 1 + 4);
    expect(decodeMessage(q).questions[0]!.name).toBe('');
  });

  it('formats IPv6 canonically (RFC 5952)', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['::', '::'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['fe80::', 'fe80::'],
      ['::ffff:10.1.2.3', '::ffff:a01:203'],
      ['fd00:0:0:0:1:0:0:1', 'fd00::1:0:0:1'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ];
    const bytes = new Uint8Array(16);
    for (const [input, want] of cases) {
      writeIpv6(input, bytes, 0);
      expect(formatIpv6(bytes, 0)).toBe(want);
    }
    expectMalformed(() => writeIpv6('1::2::3', bytes, 0));
    expectMalformed(() => writeIpv6('1:2:3', bytes, 0));
    expectMalformed(() => writeIpv6('12345::', bytes, 0));
  });
});

describe('codec rejects malformed input with DNS_MALFORMED', () => {
  const cases: Record<string, string> = {
    'truncated header': '1234 0100 0001',
    'empty message': '',
    'label longer than 63': `${HEADER_Q1} 40 ${'61'.repeat(64)} 00 0001 0001`,
    'reserved label type 0x80': `${HEADER_Q1} 80 00 0001 0001`,
    'reserved label type 0x40': `${HEADER_Q1} 41 00 0001 0001`,
    'name runs past the end': `${HEADER_Q1} 05 6162`,
    'missing root label': `${HEADER_Q1} 03 616263`,
    'question type/class cut off': `${HEADER_Q1} 01 61 00 0001`,
    'pointer to itself': `${HEADER_Q1} c00c 0001 0001`,
    'pointer forward': `${HEADER_Q1} c010 0001 0001 00`,
    'pointer out of bounds': `${HEADER_Q1} c0ff 0001 0001`,
    'truncated pointer': `${HEADER_Q1} c0`,
    'qdcount lies': '1234 0100 0005 0000 0000 0000 01 61 00 0001 0001',
    'ancount lies': '1234 8100 0001 0001 0000 0000 01 61 00 0001 0001',
    'rdlength overrun': `1234 8100 0001 0001 0000 0000 01 61 00 0001 0001 c00c 0001 0001 0000003c 0010 0a000001`,
    'A rdata wrong length': `1234 8100 0001 0001 0000 0000 01 61 00 0001 0001 c00c 0001 0001 0000003c 0003 0a0000`,
    'AAAA rdata wrong length': `1234 8100 0001 0001 0000 0000 01 61 00 0001 0001 c00c 001c 0001 0000003c 0004 0a000001`,
    'CNAME name overruns rdata': `1234 8100 0001 0001 0000 0000 01 61 00 0001 0001 c00c 0005 0001 0000003c 0002 0162 00`,
    'SOA too short': `1234 8100 0001 0001 0000 0000 01 61 00 0001 0001 c00c 0006 0001 0000003c 0004 c00c c00c`,
    'OPT with non-root name': `1234 0100 0001 0000 0000 0001 01 61 00 0001 0001 01 61 00 0029 04d0 00000000 0000`,
    'two OPT records': `1234 0100 0001 0000 0000 0002 01 61 00 0001 0001 00 0029 04d0 00000000 0000 00 0029 04d0 00000000 0000`,
    'EDNS option overruns': `1234 0100 0001 0000 0000 0001 01 61 00 0001 0001 00 0029 04d0 00000000 0006 000a 0008 0102`,
  };
  for (const [what, text] of Object.entries(cases)) {
    it(what, () => expectMalformed(() => decodeMessage(hex(text))));
  }

  it('a pointer loop between two names', () => {
    // Answer name at 0x21 points to 0x23, whose label points back to 0x21.
    const wire = hex(`1234 8100 0001 0001 0000 0000 01 61 00 0001 0001  c023 01 62 c021 0001 0001 00000000 0000`);
    expectMalformed(() => decodeMessage(wire));
  });

  it('a name longer than 255 octets, built from pointers', () => {
    // Five 63-octet labels in a row: 320 octets of name.
    const label = '3f' + '61'.repeat(63);
    expectMalformed(() => decodeMessage(hex(`${HEADER_Q1} ${label.repeat(5)} 00 0001 0001`)));
    // ... and via compression: 4 labels (256 octets with the root) by chaining pointers.
    const wire = hex(
      `1234 8100 0001 0001 0000 0000 ${label} ${label} ${label} 00 0001 0001 ${label} c00c 0001 0001 00000000 0000`,
    );
    expectMalformed(() => decodeMessage(wire));
  });

  it('rejects names that cannot be encoded', () => {
    expectMalformed(() => encodeMessage(message({ questions: [{ name: 'a'.repeat(64) + '.test', type: 1, class: 1 }] })));
    expectMalformed(() => encodeMessage(message({ questions: [{ name: Array(130).fill('ab').join('.'), type: 1, class: 1 }] })));
    expectMalformed(() => encodeMessage(message({ questions: [{ name: 'a..b', type: 1, class: 1 }] })));
    expectMalformed(() => encodeMessage(message({ rcode: 16 })));
  });

  it('the fast parser rejects the same question-level faults', () => {
    const q = new ParsedQuery();
    for (const text of [
      `${HEADER_Q1} 40 ${'61'.repeat(64)} 00 0001 0001`,
      `${HEADER_Q1} c00c 0001 0001`,
      `${HEADER_Q1} 05 6162`,
      `${HEADER_Q1} 01 61 00 0001`,
      `1234 0100 0001 0000 0000 0001 01 61 00 0001 0001 00 0029 04d0 00000000 0010 00`,
      `1234 0100 0001 0000 0000 0003 01 61 00 0001 0001 00 0029 04d0 00000000 0000`,
    ])
      expectMalformed(() => parseQuery(hex(text), q));
  });
});

describe('fast query parser', () => {
  it('reads header, question and EDNS, hashing every case variant alike', () => {
    const a = new ParsedQuery();
    const b = new ParsedQuery();
    parseQuery(query('demo.jitsu.test', QType.AAAA, { id: 77, edns: { udpPayloadSize: 4096, dnssecOk: true } }), a);
    parseQuery(query('DEMO.Jitsu.TEST', QType.AAAA, { edns: false }), b);
    expect(a).toMatchObject({ id: 77, qtype: QType.AAAA, qclass: 1, hasEdns: true, ednsPayload: 4096, ednsDo: true, ednsVersion: 0, cacheable: true });
    expect(a.nameEnd).toBe(12 + 17);
    expect(a.questionEnd).toBe(12 + 21);
    expect(b.hasEdns).toBe(false);
    expect(b.hash).toBe(a.hash);
    parseQuery(query('demo.jitsu.tesu', QType.AAAA), b);
    expect(b.hash).not.toBe(a.hash);
  });

  it('marks names with bytes >= 0x80 as not cacheable', () => {
    const q = new ParsedQuery();
    parseQuery(hex(`${HEADER_Q1} 02 61ff 00 0001 0001`), q);
    expect(q.cacheable).toBe(false);
  });
});

describe('fuzz', () => {
  it('10k mutated packets: decode throws nothing but DNS_MALFORMED', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const seeds = [
      query('demo.jitsu.test', QType.A, { edns: { dnssecOk: true, options: [{ code: 10, data: new Uint8Array(8) }] } }),
      encodeMessage(
        message({
          questions: [{ name: 'demo.jitsu.test', type: 1, class: 1 }],
          answers: [
            { name: 'demo.jitsu.test', type: 1, class: 1, ttl: 60, data: { kind: 'A', address: '10.0.0.1' } },
            { name: 'demo.jitsu.test', type: 28, class: 1, ttl: 60, data: { kind: 'AAAA', address: 'fd00::1' } },
            { name: 'www.jitsu.test', type: 5, class: 1, ttl: 60, data: { kind: 'CNAME', host: 'demo.jitsu.test' } },
          ],
          authorities: [
            {
              name: 'jitsu.test',
              type: 6,
              class: 1,
              ttl: 60,
              data: { kind: 'SOA', mname: 'ns.jitsu.test', rname: 'hostmaster.jitsu.test', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 },
            },
          ],
          edns: { udpPayloadSize: 1232, version: 0, dnssecOk: false, options: [] },
        }),
      ),
    ];
    const parsed = new ParsedQuery();
    let malformedCount = 0;
    for (let i = 0; i < 10_000; i++) {
      const base = seeds[i % seeds.length]!;
      let buf = Buffer.from(base);
      const mutations = 1 + rand(4);
      for (let m = 0; m < mutations; m++) {
        const op = rand(4);
        if (op === 0) buf[rand(buf.length)] = rand(256);
        else if (op === 1) buf = buf.subarray(0, rand(buf.length + 1));
        else if (op === 2) buf[rand(buf.length)] = 0xc0 | rand(4);
        else buf = Buffer.concat([buf, Buffer.from([rand(256), rand(256)])]);
      }
      for (const decode of [() => decodeMessage(buf), () => buf.length >= 12 && parseQuery(buf, parsed)]) {
        try {
          decode();
        } catch (err) {
          if (errorCode(err) !== 'DNS_MALFORMED') throw err;
          malformedCount++;
        }
      }
    }
    // The mutations must actually exercise the error paths.
    expect(malformedCount).toBeGreaterThan(2000);
  });
});
