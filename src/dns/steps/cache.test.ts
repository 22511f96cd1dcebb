import { describe, expect, it } from 'vitest';
import { decodeMessage } from '../codec.js';
import { QType } from '../constants.js';
import { createStaticSummoner } from '../static-summoner.js';
import { silentLogger } from '../../observe/log.js';
import { ZoneAnswers } from './answers.js';
import { CacheStep } from './cache.js';
import { FitStep } from './fit.js';
import { link, type DnsRequest, type Reply, type Step } from './step.js';
import { SummonStep } from './summon.js';
import { kit, parsedRequest } from '../../../test/helpers/dns-steps.js';
import { query } from '../../../test/helpers/dns-util.js';

function setup(entries = 100) {
  const summoner = createStaticSummoner([{ service: 'www', names: ['www.jitsu.test'], ipv4: ['10.0.0.1'] }]);
  const { metrics, replies } = kit();
  const answers = new ZoneAnswers({ summoner, serial: 1, ttl: 60, ra: false });
  const out = new FitStep(undefined, replies, metrics);
  const summon = new SummonStep({ answers, out, replies, metrics, logger: silentLogger, maxPending: 10 });
  const cache = new CacheStep({ summoner, summon, out, entries });
  // Stands in for the authority step: encodes the answer and leaves it on the request, counting calls.
  const authority: Step & { calls: number } = {
    calls: 0,
    serve(req: DnsRequest): Reply {
      this.calls++;
      const answer = summoner.lookup(req.name());
      if (answer === undefined) return null;
      req.authored = answers.service(req, answer);
      req.authoredFrom = answer;
      return out.answer(req, req.authored);
    },
  };
  const path = link(cache, authority);
  const ask = (msg: Buffer) => path.serve(parsedRequest(msg)) as Buffer | null;
  return { summoner, cache, authority, ask };
}

describe('cache step', () => {
  it('keeps what the authority step encoded and serves repeats without it, per type and EDNS variant', () => {
    const { cache, authority, ask } = setup();
    ask(query('www.jitsu.test', QType.A, { id: 1 }));
    const hit = decodeMessage(ask(query('WWW.jitsu.test', QType.A, { id: 2 }))!);
    expect(hit).toMatchObject({ id: 2, questions: [{ name: 'WWW.jitsu.test' }] });
    expect(authority.calls).toBe(1);
    ask(query('www.jitsu.test', QType.A, { edns: {} }));
    ask(query('www.jitsu.test', QType.MX));
    expect(authority.calls).toBe(3);
    expect(cache.size()).toBe(3);
  });

  it('a replaced answer object misses by itself; names it does not own are not kept', () => {
    const { summoner, authority, ask } = setup();
    ask(query('www.jitsu.test', QType.A));
    summoner.answers.set('www.jitsu.test', { ...summoner.answers.get('www.jitsu.test')!, ipv4: ['10.9.9.9'] });
    expect(decodeMessage(ask(query('www.jitsu.test', QType.A))!).answers.map((a) => a.data)).toEqual([{ kind: 'A', address: '10.9.9.9' }]);
    expect(authority.calls).toBe(2);
    ask(query('other.test', QType.A));
    ask(query('other.test', QType.A));
    expect(authority.calls).toBe(4);
  });

  it('bypasses other classes and stays within its bound', () => {
    const { cache, authority, ask } = setup(2);
    for (const t of [QType.A, QType.AAAA, QType.MX, QType.TXT]) ask(query('www.jitsu.test', t));
    expect(cache.size()).toBeLessThanOrEqual(2);
    const calls = authority.calls;
    ask(query('www.jitsu.test', QType.A, { klass: 255 }));
    ask(query('www.jitsu.test', QType.A, { klass: 255 }));
    expect(authority.calls).toBe(calls + 2);
  });
});
