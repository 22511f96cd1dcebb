import { describe, expect, it } from 'vitest';
import { decodeMessage } from '../codec.js';
import { QType, Rcode } from '../constants.js';
import { ParseStep } from './parse.js';
import { DnsRequest, link } from './step.js';
import { kit, recorder } from '../../../test/helpers/dns-steps.js';
import { query } from '../../../test/helpers/dns-util.js';

function setup() {
  const { registry, metrics, replies } = kit();
  const next = recorder(Buffer.from('next'));
  const path = link(new ParseStep(replies, metrics), next);
  const serve = (msg: Buffer) => path.serve(new DnsRequest().start(msg, 'udp', undefined));
  return { registry, next, serve };
}

describe('parse step', () => {
  it('hands a well-formed query on, parsed', () => {
    const { next, serve } = setup();
    expect(serve(query('a.test', QType.MX, { edns: { udpPayloadSize: 4096 } }))).toEqual(Buffer.from('next'));
    expect(next.seen[0]!.q).toMatchObject({ qtype: QType.MX, hasEdns: true, ednsPayload: 4096 });
  });

  it('drops short messages, responses and unparseable questions; answers the rule breakers itself', () => {
    const { next, serve, registry } = setup();
    expect(serve(Buffer.alloc(5))).toBeNull();
    const response = query('a.test', QType.A);
    response[2]! |= 0x80;
    expect(serve(response)).toBeNull();
    const cut = query('a.test', QType.A);
    expect(serve(cut.subarray(0, cut.length - 2))).toBeNull();
    expect(decodeMessage(serve(query('a.test', QType.A, { opcode: 4 })) as Buffer).rcode).toBe(Rcode.NOTIMP);
    const none = query('a.test', QType.A);
    none.writeUInt16BE(0, 4);
    expect(decodeMessage(serve(none) as Buffer)).toMatchObject({ rcode: Rcode.FORMERR, questions: [] });
    expect(decodeMessage(serve(query('a.test', QType.A, { edns: { version: 2 } })) as Buffer).rcode).toBe(Rcode.BADVERS);
    expect(next.seen).toHaveLength(0);
    const text = registry.render();
    expect(text).toContain('jitsu_dns_malformed_total{transport="udp"} 2');
    expect(text).toContain('jitsu_dns_responses_received_total 1');
  });
});
