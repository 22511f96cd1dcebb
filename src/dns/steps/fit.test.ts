import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../codec.js';
import { Flag, QType, Rcode } from '../constants.js';
import { ResponseRateLimiter } from '../rrl.js';
import { sourceFromText } from '../source.js';
import { FitStep, udpLimit } from './fit.js';
import { RateLimitStep } from './rate-limit.js';
import { kit, parsedRequest } from '../../../test/helpers/dns-steps.js';
import { query } from '../../../test/helpers/dns-util.js';

/** An authoritative answer with `n` A records, as the authority step encodes it. */
function answerFor(name: string, n: number): Buffer {
  const m = decodeMessage(query(name, QType.A, { id: 1 }));
  return encodeMessage({
    ...m,
    qr: true,
    aa: true,
    answers: Array.from({ length: n }, (_, i) => ({ name, type: QType.A, class: 1, ttl: 5, data: { kind: 'A' as const, address: `10.0.0.${i}` } })),
  });
}

describe('fit step', () => {
  it('udpLimit: 512 without EDNS, the advertised size within [512, 1232] with it', () => {
    const limit = (edns: false | { udpPayloadSize: number }) => udpLimit(parsedRequest(query('a.test', 1, { edns })).q);
    expect([limit(false), limit({ udpPayloadSize: 100 }), limit({ udpPayloadSize: 900 }), limit({ udpPayloadSize: 9000 })]).toEqual([512, 512, 900, 1232]);
  });

  it('a fitting answer leaves as a copy with the query ID, RD/CD and question case; the template is untouched', () => {
    const { metrics, replies } = kit();
    const fit = new FitStep(undefined, replies, metrics);
    const template = answerFor('a.test', 2);
    const before = Buffer.from(template);
    const out = fit.answer(parsedRequest(query('A.TeSt', QType.A, { id: 77, rd: false, cd: true })), template)!;
    expect(decodeMessage(out)).toMatchObject({ id: 77, rd: false, cd: true, aa: true, questions: [{ name: 'A.TeSt' }] });
    expect(template).toEqual(before);
  });

  it('too large for the datagram: the question with TC=1, AA kept for ours, AA and AD for upstream replies; TCP is never cut', () => {
    const { metrics, replies, registry } = kit();
    const fit = new FitStep(undefined, replies, metrics);
    const big = answerFor('a.test', 40);
    expect(decodeMessage(fit.answer(parsedRequest(query('a.test', QType.A)), big)!)).toMatchObject({ tc: true, aa: true, answers: [] });
    expect(decodeMessage(fit.answer(parsedRequest(query('a.test', QType.A), 'tcp'), big)!).answers).toHaveLength(40);
    const upstream = Buffer.from(big);
    upstream[2]! &= ~(Flag.AA >> 8);
    upstream[3]! |= Flag.AD;
    const cut = decodeMessage(fit.upstream(parsedRequest(query('a.test', QType.A)), upstream, Rcode.NOERROR));
    expect(cut).toMatchObject({ tc: true, aa: false, ad: true, answers: [] });
    expect(registry.render()).toContain('jitsu_dns_truncated_total 2');
  });

  it('with RRL on, asks the gate first: over the rate the answer is dropped or slipped (TC=1, AA kept)', () => {
    const { metrics, replies } = kit();
    const rrl = new RateLimitStep(new ResponseRateLimiter({ rate: 1, slip: 2 }), replies, metrics);
    const fit = new FitStep(rrl, replies, metrics);
    const client = sourceFromText('203.0.113.9');
    const template = answerFor('a.test', 1);
    const outs = [0, 1, 2].map(() => fit.answer(parsedRequest(query('a.test', QType.A), 'udp', client), template));
    expect(decodeMessage(outs[0]!).answers).toHaveLength(1);
    const limited = outs.slice(1).map((o) => (o === null ? 'drop' : decodeMessage(o).tc ? 'slip' : 'sent'));
    expect(limited.sort()).toEqual(['drop', 'slip']);
    expect(decodeMessage(outs.find((o) => o !== null && decodeMessage(o).tc)!)).toMatchObject({ aa: true, answers: [] });
    // TCP and in-process callers pass the gate untouched.
    expect(rrl.limit(parsedRequest(query('a.test', QType.A), 'tcp', client), Rcode.NOERROR, 0)).toBeUndefined();
    expect(rrl.limit(parsedRequest(query('a.test', QType.A)), Rcode.NOERROR, 0)).toBeUndefined();
  });
});
