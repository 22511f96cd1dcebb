import { describe, expect, it } from 'vitest';
import { JitsuError } from '../../errors.js';
import { silentLogger } from '../../observe/log.js';
import { decodeMessage } from '../codec.js';
import { QType, Rcode } from '../constants.js';
import { createStaticSummoner } from '../static-summoner.js';
import type { ServiceAnswer } from '../types.js';
import { ZoneAnswers } from './answers.js';
import { FitStep } from './fit.js';
import { SummonStep } from './summon.js';
import { kit, parsedRequest } from '../../../test/helpers/dns-steps.js';
import { query } from '../../../test/helpers/dns-util.js';

function setup(ensureUp: () => true | Promise<void>, maxPending = 10) {
  const summoner = createStaticSummoner([{ service: 's', names: ['s.jitsu.test'], ipv4: ['10.0.0.5'], ensureUp }]);
  const { registry, metrics, replies } = kit();
  const answers = new ZoneAnswers({ summoner, serial: 1, ttl: 60, ra: false });
  const summon = new SummonStep({ answers, out: new FitStep(undefined, replies, metrics), replies, metrics, logger: silentLogger, maxPending });
  const answer = summoner.lookup('s.jitsu.test') as ServiceAnswer;
  const gate = (msg: Buffer) => {
    const req = parsedRequest(msg);
    req.knowName('s.jitsu.test');
    return summon.serve(req, answer);
  };
  return { registry, gate };
}

describe('summon gate', () => {
  it('lets other types and ready services through without waiting; asks only for A/AAAA/ANY', () => {
    let calls = 0;
    const { gate } = setup(() => (calls++, true));
    expect(gate(query('s.jitsu.test', QType.MX))).toBeUndefined();
    expect(calls).toBe(0);
    for (const t of [QType.A, QType.AAAA, QType.ANY]) expect(gate(query('s.jitsu.test', t))).toBeUndefined();
    expect(calls).toBe(3);
  });

  it('a booting service: the answer waits for the boot, from a copy of the query (the server reuses its memory)', async () => {
    let release!: () => void;
    const boot = new Promise<void>((resolve) => (release = resolve));
    const { gate } = setup(() => boot);
    const msg = query('s.jitsu.test', QType.A, { id: 31 });
    const later = gate(msg) as Promise<Buffer>;
    msg.fill(0);
    release();
    expect(decodeMessage(await later)).toMatchObject({ id: 31, aa: true, answers: [{ data: { kind: 'A', address: '10.0.0.5' } }] });
  });

  it('a failed boot is SERVFAIL; beyond maxPending waiting queries SERVFAIL at once', async () => {
    const failed = setup(() => Promise.reject(new JitsuError('BOOT_FAILED', 'exit 1')));
    expect(decodeMessage((await failed.gate(query('s.jitsu.test', QType.A)))!).rcode).toBe(Rcode.SERVFAIL);
    expect(failed.registry.render()).toContain('jitsu_dns_summon_failures_total 1');
    const never = new Promise<void>(() => {});
    const busy = setup(() => never, 1);
    expect(busy.gate(query('s.jitsu.test', QType.A))).toBeInstanceOf(Promise);
    expect(decodeMessage(busy.gate(query('s.jitsu.test', QType.A)) as Buffer).rcode).toBe(Rcode.SERVFAIL);
    expect(busy.registry.render()).toContain('jitsu_dns_summon_overload_total 1');
  });
});
