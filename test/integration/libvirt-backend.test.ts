/**
 * The libvirt backend against a real libvirtd (started by scripts/start-libvirtd.sh): TCG microvm
 * domains running the project's guest image on bridge jt4b3 (10.203.3.0/24), summoned by name like
 * the original Jitsu, then curled from the host.
 */
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { backend } from '../../src/backends/libvirt/index.js';
import { linkExists, linkMaster } from '../../src/network/index.js';
import { errorCode } from '../../src/errors.js';
import { buildGuest, createVmEnv, curl, curlFails, type GuestImage, type VmEnv } from '../helpers/vm-env.js';
import { defineDomain, microvmDomainXml, removeDomain, startLibvirtd, stopLibvirtd, virshRun } from '../helpers/vm-libvirt.js';

const canRun = process.getuid?.() === 0 && existsSync('/usr/sbin/libvirtd') && existsSync('/usr/bin/virsh') && existsSync('/usr/bin/qemu-system-x86_64');

describe.skipIf(!canRun)('libvirt backend (real libvirtd, TCG microvm domains)', () => {
  let env: VmEnv;
  let img: GuestImage;
  let startedDaemon = false;
  const domains: string[] = [];
  const t = (ms: number): AbortSignal => AbortSignal.timeout(ms);

  async function domain(name: string, host: number, tap: string, transient = false): Promise<ServiceSpec> {
    const s = env.spec(name, host, {});
    // libvirt runs QEMU as libvirt-qemu: it must be able to create the console file in runDir.
    chmodSync(env.runRoot, 0o755);
    chmodSync(s.runDir, 0o777);
    domains.push(name);
    await removeDomain(name);
    await defineDomain(join(s.runDir, 'domain.xml'), microvmDomainXml({
      name, kernel: img.stock, initrd: img.initrd, bridge: env.bridge, mac: s.network.mac, ip: s.network.ip,
      gateway: s.network.gateway, tap, consolePath: join(s.runDir, 'console.log'),
    }), transient);
    return s;
  }

  beforeAll(async () => {
    img = await buildGuest();
    startedDaemon = await startLibvirtd();
    env = await createVmEnv(3, 'libvirt');
  });
  afterAll(async () => {
    for (const d of domains) await removeDomain(d);
    await env?.cleanup(async () => undefined);
    if (startedDaemon) await stopLibvirtd();
  });

  it('summons a defined, shut-off domain by name; curl gets its page; suspend, resume by start, shutdown, destroy', async () => {
    const s = await domain('jt4-lv-web', 10, 'jt4v1');
    expect(await backend.state({ backend: 'libvirt', service: s.service, data: { domain: s.service, uri: 'qemu:///system' } }, s)).toBe('stopped');
    const t0 = performance.now();
    const h: BackendHandle = await backend.start(s, t(30_000));
    expect(h).toMatchObject({ backend: 'libvirt', link: 'jt4v1', mac: s.network.mac });
    expect(h.pid).toBeGreaterThan(0);
    expect(linkMaster('jt4v1')).toBe(env.bridge);
    await backend.ready(h, s, t(60_000));
    const readyMs = performance.now() - t0;
    expect(await curl('http://10.203.3.10/')).toBe('jitsu guest jt4-lv-web\n');
    console.log(`[libvirt] start+ready (first frame) ${readyMs.toFixed(0)} ms, curl ok at ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await backend.state(h, s)).toBe('running');

    await backend.stop(h, s, 'suspend', t(30_000));
    expect(await backend.state(h, s)).toBe('paused');
    expect(await curlFails('http://10.203.3.10/', 1)).toBe(true);
    // Like the original: summoning a paused domain resumes it, and it is ready at once.
    const h2 = await backend.start(s, t(30_000));
    await backend.ready(h2, s, t(5000));
    expect(await curl('http://10.203.3.10/')).toBe('jitsu guest jt4-lv-web\n');

    const t1 = performance.now();
    await backend.stop(h2, s, 'shutdown', t(60_000));
    expect(await backend.state(h2, s)).toBe('stopped');
    expect((await virshRun(['domstate', '--reason', s.service])).trim()).toMatch(/shut off \((shutdown|destroyed)\)/);
    expect(readFileSync(join(s.runDir, 'console.log'), 'utf8')).toContain('jitsu-guest: power button, powering off');
    console.log(`[libvirt] clean shutdown ${(performance.now() - t1).toFixed(0)} ms`);
    expect(linkExists('jt4v1')).toBe(false);

    // Boot again, then destroy; the domain stays defined (we never undefine what we did not make).
    const h3 = await backend.start(s, t(30_000));
    await backend.ready(h3, s, t(60_000));
    await backend.stop(h3, s, 'destroy', t(30_000));
    expect(await backend.state(h3, s)).toBe('stopped');
    expect((await virshRun(['domstate', '--reason', s.service])).trim()).toBe('shut off (destroyed)');
    await backend.stop(h3, s, 'destroy', t(30_000)); // idempotent
  });

  it('stop mode hibernate is a managed save; resume restores the guest where it was (a counter in guest RAM survives)', async () => {
    const s = await domain('jt4-lv-hib', 12, 'jt4v3');
    const h = await backend.start(s, t(30_000));
    await backend.ready(h, s, t(60_000));
    const page = 'http://10.203.3.12/cgi-bin/count';
    expect((await curl(page, 10)).trim()).toBe('1');
    await backend.stop(h, s, 'hibernate', t(60_000));
    expect((await virshRun(['domstate', '--reason', s.service])).trim()).toBe('shut off (saved)');
    expect(await backend.state(h, s)).toBe('paused');
    const woken = await backend.resume!(h, s, t(60_000));
    expect(woken).toBeDefined();
    await backend.ready(woken!, s, t(30_000));
    expect((await curl(page, 10)).trim()).toBe('2');
    // Destroying a hibernated domain drops its save: the next start is a cold boot.
    await backend.stop(woken!, s, 'hibernate', t(60_000));
    await backend.stop(woken!, s, 'destroy', t(30_000));
    expect(await virshRun(['dominfo', s.service])).toMatch(/^Managed save:\s+no$/m);
    expect(await backend.state(woken!, s)).toBe('stopped');
  });

  it('adopts a running transient domain (ready at once) and destroy makes it vanish', async () => {
    const s = await domain('jt4-lv-tr', 11, 'jt4v2', true);
    // Wait until the guest serves, as an operator-started VM would.
    for (let i = 0; i < 300 && (await curlFails('http://10.203.3.11/', 1)); i++) await new Promise((r) => setTimeout(r, 100));
    const h = await backend.start(s, t(30_000));
    const t0 = performance.now();
    await backend.ready(h, s, t(5000));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await curl('http://10.203.3.11/')).toBe('jitsu guest jt4-lv-tr\n');
    await backend.stop(h, s, 'destroy', t(30_000));
    expect(await backend.state(h, s)).toBe('stopped');
    await backend.stop(h, s, 'destroy', t(30_000));
  });

  it('ready=tcp:80 works for libvirt domains too', async () => {
    const s0 = await domain('jt4-lv-tcp', 12, 'jt4v3');
    const s: ServiceSpec = { ...s0, ready: { kind: 'tcp', port: 80 } };
    const h = await backend.start(s, t(30_000));
    await backend.ready(h, s, t(60_000));
    expect(await curl('http://10.203.3.12/')).toBe('jitsu guest jt4-lv-tcp\n');
    await backend.stop(h, s, 'destroy', t(30_000));
  });

  it('an unknown domain fails with BOOT_FAILED naming it; bad keys with CONFIG_INVALID', async () => {
    const s = env.spec('jt4-lv-none', 13, { domain: ['jt4-no-such-domain'] });
    const err = await backend.start(s, t(30_000)).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect((err as Error).message).toContain('jt4-no-such-domain');
    expect(errorCode(await backend.start(env.spec('jt4-lv-bad', 14, { kernel: ['/x'] }), t(5000)).catch((e: unknown) => e))).toBe('CONFIG_INVALID');
  });
});
