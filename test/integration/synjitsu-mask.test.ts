import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../src/native/index.js';
import { rigUnavailable, SynjitsuRig } from '../helpers/synjitsu-rig.js';
import { maskedService, metric, sleep, type Boot } from '../helpers/synjitsu-scenario.js';

const unavailable = rigUnavailable() ?? (nativeAvailable() ? undefined : 'native addon not built (npx node-gyp rebuild)');

describe.skipIf(unavailable !== undefined)('synjitsu masking on a real bridge', () => {
  const rig = new SynjitsuRig(31);
  let svc: Boot | undefined;

  beforeAll(async () => {
    await rig.setup();
    await rig.startServer();
  });
  afterAll(async () => {
    await svc?.masker.close();
    await rig.cleanup();
  });
  beforeEach(async () => {
    await svc?.masker.close();
    svc = undefined;
    await rig.reset();
  });

  it('park masks a 300 ms boot: connect ok, response ok, 0 SYN retransmits', async () => {
    svc = await maskedService(rig, 'park', 300);
    const before = await rig.counters();
    const res = await rig.curl('/');
    const after = await rig.counters();
    await svc.done();
    console.log(`park 300ms: connect=${res.connect}s firstByte=${res.firstByte}s`);
    expect(res.code, res.stderr).toBe(0);
    expect(res.body).toContain('hello from vm GET');
    expect(svc.summons).toBe(1);
    expect(after.synRetrans - before.synRetrans).toBe(0);
    expect(after.retransSegs - before.retransSegs).toBe(0);
    expect(res.firstByte).toBeGreaterThan(0.3);
    expect(res.firstByte).toBeLessThan(0.9);
    expect(metric(svc.metrics, 'synjitsu_parked_syns_total')).toBe(1);
    expect(metric(svc.metrics, 'synjitsu_connections_total', 'handed_over')).toBe(1);
  });
});
