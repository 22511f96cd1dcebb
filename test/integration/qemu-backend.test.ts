/**
 * The qemu backend against real QEMU: the project's guest image boots as a -M microvm guest on a
 * tap on a private bridge (jt4b1, 10.203.1.0/24), and curl from the host gets its page.
 */
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { backend } from '../../src/backends/qemu/index.js';
import { resolveAccel, verdictPath } from '../../src/backends/qemu/accel.js';
import { linkExists, linkMaster } from '../../src/network/index.js';
import { errorCode } from '../../src/errors.js';
import { buildGuest, createVmEnv, curl, curlFails, type GuestImage, type VmEnv } from '../helpers/vm-env.js';

const hasQemu = existsSync('/usr/bin/qemu-system-x86_64');
const isRoot = process.getuid?.() === 0;

describe.skipIf(!hasQemu || !isRoot)('qemu backend (real QEMU, TCG or KVM per probe)', () => {
  let env: VmEnv;
  let img: GuestImage;
  const timeout = (ms: number): AbortSignal => AbortSignal.timeout(ms);

  async function boot(s: ServiceSpec, readyMs = 30_000): Promise<BackendHandle> {
    const h = await backend.start(s, timeout(15_000));
    env.track(h, s);
    await backend.ready(h, s, timeout(readyMs));
    return h;
  }

  beforeAll(async () => {
    img = await buildGuest();
    env = await createVmEnv(1);
  });
  afterAll(async () => {
    await env?.cleanup((h, s) => backend.stop(h, s, 'destroy', timeout(10_000)));
  });

  it('accel=auto probes once and caches its verdict for this host', async () => {
    const v = await resolveAccel({ accel: 'auto', kernel: img.stock, initrd: img.initrd, acpi: true, binary: 'qemu-system-x86_64' }, process.env['JITSU_CACHE'] || '/var/cache/jitsu');
    expect(['kvm', 'tcg']).toContain(v.accel);
    expect(v.reason.length).toBeGreaterThan(0);
    const cached = JSON.parse(readFileSync(verdictPath(process.env['JITSU_CACHE'] || '/var/cache/jitsu'), 'utf8')) as { accel: string };
    expect(cached.accel).toBe(v.accel);
    console.log(`[qemu] accel verdict: ${v.accel} (${v.reason})`);
  });

  it('boots the stock kernel, curl gets the page, suspend/resume, destroy removes everything', async () => {
    const s = env.spec('jt4-q-web', 10, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4t1'] });
    const t0 = performance.now();
    const h = await backend.start(s, timeout(15_000));
    env.track(h, s);
    const startMs = performance.now() - t0;
    expect(h).toMatchObject({ backend: 'qemu', service: 'jt4-q-web', link: 'jt4t1', mac: s.network.mac });
    expect(linkMaster('jt4t1')).toBe(env.bridge);
    await backend.ready(h, s, timeout(30_000));
    const readyMs = performance.now() - t0;
    expect(await curl('http://10.203.1.10/')).toBe('jitsu guest jt4-q-web\n');
    console.log(`[qemu] stock kernel: start() ${startMs.toFixed(0)} ms, first frame ${readyMs.toFixed(0)} ms, curl ok ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await backend.state(h, s)).toBe('running');
    expect(readFileSync(join(s.runDir, 'console.log'), 'utf8')).toContain('jitsu-guest: eth0 10.203.1.10/24 up');

    await backend.stop(h, s, 'suspend', timeout(5000));
    expect(await backend.state(h, s)).toBe('paused');
    expect(await curlFails('http://10.203.1.10/', 1)).toBe(true);
    await backend.resume!(h, s, timeout(5000));
    expect(await backend.state(h, s)).toBe('running');
    expect(await curl('http://10.203.1.10/')).toBe('jitsu guest jt4-q-web\n');

    await backend.stop(h, s, 'destroy', timeout(10_000));
    expect(await backend.state(h, s)).toBe('stopped');
    expect(linkExists('jt4t1')).toBe(false);
    expect(existsSync(`/proc/${h.pid}/stat`) && readFileSync(`/proc/${h.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') === false).toBe(false);
    // Idempotent.
    await backend.stop(h, s, 'destroy', timeout(10_000));
  });

  it('shutdown powers the guest off cleanly through ACPI (QMP system_powerdown)', async () => {
    const s = env.spec('jt4-q-down', 11, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4t2'], shutdown_timeout: ['20'] });
    const h = await boot(s);
    expect(await curl('http://10.203.1.11/')).toBe('jitsu guest jt4-q-down\n');
    const t0 = performance.now();
    await backend.stop(h, s, 'shutdown', timeout(30_000));
    const ms = performance.now() - t0;
    expect(await backend.state(h, s)).toBe('stopped');
    // The guest, not our quit fallback, ended it: its poweroff handler ran and it took well under the bound.
    expect(readFileSync(join(s.runDir, 'console.log'), 'utf8')).toContain('jitsu-guest: power button, powering off');
    expect(ms).toBeLessThan(15_000);
    expect(linkExists('jt4t2')).toBe(false);
    console.log(`[qemu] clean ACPI shutdown took ${ms.toFixed(0)} ms`);
  });

  it('ready=tcp:80 waits for the guest HTTP port', async () => {
    const s = env.spec('jt4-q-tcp', 12, { tap: ['jt4t3'] }, { ready: { kind: 'tcp', port: 80 } });
    // No kernel/initrd keys: the backend defaults to the project's guest image.
    const h = await boot(s);
    expect(await curl('http://10.203.1.12/')).toBe('jitsu guest jt4-q-tcp\n');
    await backend.stop(h, s, 'destroy', timeout(10_000));
  });

  it('a missing kernel fails the boot with BOOT_FAILED naming the file; nothing is left behind', async () => {
    const s = env.spec('jt4-q-nokernel', 13, { kernel: ['/nonexistent/vmlinux'], initrd: [img.initrd], tap: ['jt4t4'] });
    const err = await backend.start(s, timeout(15_000)).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect(String((err as Error).message)).toContain('/nonexistent/vmlinux');
    expect(linkExists('jt4t4')).toBe(false);
  });

  it('a file that is not a kernel fails the boot with BOOT_FAILED carrying QEMU\'s reason', async () => {
    const bogus = join(env.runRoot, 'not-a-kernel');
    writeFileSync(bogus, 'this is not a kernel\n'.repeat(100));
    const s = env.spec('jt4-q-badkernel', 14, { kernel: [bogus], initrd: [img.initrd], tap: ['jt4t5'] });
    const err = await backend.start(s, timeout(15_000)).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect(String((err as Error).message)).toMatch(/QEMU exited .*(kernel|linux|load)/i);
    expect(linkExists('jt4t5')).toBe(false);
  });

  it('a guest that never brings its network up ends in READY_TIMEOUT with its console lines', async () => {
    // rdinit=/bin/cat: the kernel boots, userspace blocks reading the console, no frame is ever sent.
    const s = env.spec('jt4-q-silent', 15, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4t6'], cmdline: ['rdinit=/bin/cat'] });
    const h = await backend.start(s, timeout(15_000));
    env.track(h, s);
    const err = await backend.ready(h, s, timeout(8000)).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('READY_TIMEOUT');
    const details = (err as { details: { console: string[] } }).details;
    expect(details.console.length).toBeGreaterThan(0);
    await backend.stop(h, s, 'destroy', timeout(10_000));
    expect(linkExists('jt4t6')).toBe(false);
  });

  it('a guest whose kernel panics ends in BOOT_FAILED (QEMU exits), not a timeout', async () => {
    const s = env.spec('jt4-q-panic', 16, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4t7'], cmdline: ['rdinit=/nonexistent-init init=/nonexistent-init'] });
    const h = await backend.start(s, timeout(15_000));
    env.track(h, s);
    const err = await backend.ready(h, s, timeout(60_000)).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect(JSON.stringify((err as { details: unknown }).details)).toMatch(/panic|init/i);
    await backend.stop(h, s, 'destroy', timeout(10_000));
    expect(linkExists('jt4t7')).toBe(false);
  });

  it('rejects unknown keys and bad values with CONFIG_INVALID', async () => {
    const s = env.spec('jt4-q-bad', 17, { memroy: ['128'] });
    expect(errorCode(await backend.start(s, timeout(5000)).catch((e: unknown) => e))).toBe('CONFIG_INVALID');
    const s2 = env.spec('jt4-q-bad2', 18, { memory: ['lots'] });
    expect(errorCode(await backend.start(s2, timeout(5000)).catch((e: unknown) => e))).toBe('CONFIG_INVALID');
  });
});
