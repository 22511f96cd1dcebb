/**
 * Two services on one bridge, masked at the same time with different strategies: each gets its own
 * ARP answers, its own held connections and its own handover; stop + re-summon works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';
import type { MaskTarget } from '../../src/synjitsu/masker.js';
import { createSynjitsu, type Synjitsu } from '../../src/synjitsu/synjitsu.js';
import { run, SynjitsuRig } from '../helpers/synjitsu-rig.js';
import { maskingUnavailable, sleep } from '../helpers/synjitsu-scenario.js';

const unavailable = maskingUnavailable();

describe.skipIf(unavailable !== undefined)('synjitsu with two services on one bridge', () => {
  const rig = new SynjitsuRig(36);
  let masker: Synjitsu | undefined;

  beforeAll(async () => {
    await rig.setup();
    await rig.startServer();
    await rig.addSecondVm();
  });
  afterAll(async () => {
    await masker?.close();
    await rig.cleanup();
  });

  it('masks both boots at once (park + handshake), then re-summons after a stop', async () => {
    const a: MaskTarget = { service: 'a', ip: rig.vmIp, mask: 'park', mac: rig.vmMac };
    const b: MaskTarget = { service: 'b', ip: rig.vm2.ip, mask: 'handshake', mac: rig.vm2.mac };
    const links: Record<string, string> = { a: rig.vmLink, b: rig.vm2.link };
    const summons: string[] = [];
    const boots: Promise<void>[] = [];
    const metrics = new MetricsRegistry();
    const m: Synjitsu = await createSynjitsu({
      iface: rig.bridge,
      logger: silentLogger,
      metrics,
      onSummon: (service) => {
        summons.push(service);
        const t = service === 'a' ? a : b;
        m.booting(t);
        boots.push(
          (async () => {
            await sleep(service === 'a' ? 300 : 1500);
            await run('ip', ['link', 'set', links[service]!, 'up']);
            await m.ready(t, { backend: 'process', service, link: links[service]!, mac: t.mac, data: {} });
          })(),
        );
      },
    });
    masker = m;
    m.configure([a, b]);
    const get = (ip: string): ReturnType<SynjitsuRig['inClient']> =>
      rig.inClient('curl', ['-sS', '--max-time', '10', '-w', '\n%{time_starttransfer}', `http://${ip}/`], 15_000);
    const [ra, rb] = await Promise.all([get(rig.vmIp), get(rig.vm2.ip)]);
    await Promise.all(boots);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    expect(ra.stdout).toContain('hello from vm');
    expect(rb.stdout).toContain('hello from vm');
    expect(summons.sort()).toEqual(['a', 'b']);
    const ta = Number(ra.stdout.trim().split('\n').pop());
    const tb = Number(rb.stdout.trim().split('\n').pop());
    expect(ta).toBeLessThan(0.9);
    expect(tb).toBeGreaterThan(1.4);
    expect(tb).toBeLessThan(2.2);

    // Once a service is up and its handovers are done, its traffic is no longer captured at all.
    await sleep(3300);
    const seen = m.stats().synsSeen;
    const direct = await get(rig.vmIp);
    expect(direct.code, direct.stderr).toBe(0);
    await sleep(100);
    expect(m.stats().synsSeen).toBe(seen);

    // Stop b: its IP is watched again, and the next SYN summons it again.
    await run('ip', ['link', 'set', rig.vm2.link, 'down']);
    m.stopped(b);
    await run('ip', ['-n', rig.clientNs, 'neigh', 'flush', 'all']);
    boots.length = 0;
    const again = await get(rig.vm2.ip);
    await Promise.all(boots);
    expect(again.code, again.stderr).toBe(0);
    expect(summons.filter((s) => s === 'b')).toHaveLength(2);
    expect(m.stats().handedOver).toBeGreaterThanOrEqual(3);
  });
});
