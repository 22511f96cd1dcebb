import { describe, expect, it } from 'vitest';
import { JitsuError } from '../../errors.js';
import { silentLogger } from '../../observe/log.js';
import { decodeMessage, encodeMessage } from '../codec.js';
import { QType, Rcode } from '../constants.js';
import type { Forwarder } from '../forwarder.js';
import { AddressSet, sourceFromText } from '../source.js';
import { ForwardAccess } from './access.js';
import { FitStep } from './fit.js';
import { ForwardStep } from './forward.js';
import { link } from './step.js';
import { kit, parsedRequest, recorder } from '../../../test/helpers/dns-steps.js';
import { query } from '../../../test/helpers/dns-util.js';

function setup(fail = false, allow?: AddressSet) {
  const { registry, metrics, replies } = kit();
  let calls = 0;
  const forwarder: Forwarder = {
    upstreams: [{ address: '192.0.2.53', port: 53 }],
    outstanding: () => 0,
    close: async () => {},
    forward: async (q: Buffer) => {
      calls++;
      if (fail) throw new JitsuError('UPSTREAM_FAILED', 'timeout', { reason: 'timeout' });
      return encodeMessage({ ...decodeMessage(q), qr: true, ra: true });
    },
  };
  const next = recorder(null);
  const step = new ForwardStep({ forwarder, access: new ForwardAccess(allow, metrics), fit: new FitStep(undefined, replies, metrics), replies, metrics, logger: silentLogger });
  const path = link(step, next);
  return { registry, next, path, calls: () => calls };
}

describe('forward step and its access list', () => {
  it('forwards for allowed clients and in-process callers; SERVFAIL when the upstream fails', async () => {
    const ok = setup(false, new AddressSet(['10.0.0.0/8']));
    const r = decodeMessage((await ok.path.serve(parsedRequest(query('example.com', QType.A, { id: 5 }), 'udp', sourceFromText('10.1.2.3'))))!);
    expect(r).toMatchObject({ id: 5, rcode: Rcode.NOERROR, ra: true });
    await ok.path.serve(parsedRequest(query('example.com', QType.A)));
    expect(ok.calls()).toBe(2);
    const bad = setup(true);
    expect(decodeMessage((await bad.path.serve(parsedRequest(query('example.com', QType.A))))!).rcode).toBe(Rcode.SERVFAIL);
  });

  it('a client outside the list is counted and passed on, never forwarded', () => {
    const { path, next, calls, registry } = setup(false, new AddressSet(['10.0.0.0/8']));
    expect(path.serve(parsedRequest(query('example.com', QType.A), 'udp', sourceFromText('203.0.113.1')))).toBeNull();
    expect(next.seen).toHaveLength(1);
    expect(calls()).toBe(0);
    expect(registry.render()).toContain('jitsu_dns_forward_refused_total 1');
  });
});
