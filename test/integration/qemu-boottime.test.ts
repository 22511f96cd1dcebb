/**
 * Boot to first HTTP byte through the qemu backend, stock Debian cloud kernel vs the tiny kernel
 * (built only when cached or JITSU_GUEST_TINY=1, since it takes minutes cold). Median of 3 runs.
 * Bridge jt4b4, 10.203.4.0/24.
 */
import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../../src/backends/backend.js';
import { backend } from '../../src/backends/qemu/index.js';
import { buildGuest, createVmEnv, curl, firstByteMs, median, type GuestImage, type VmEnv } from '../helpers/vm-env.js';

const canRun = process.getuid?.() === 0;
const RUNS = 3;

describe.skipIf(!canRun)('qemu boot to first byte: stock vs tiny kernel', () => {
  let env: VmEnv;
  let img: GuestImage;
  const figures: Record<string, { ready: number; firstByte: number }> = {};

  beforeAll(async () => {
    img = await buildGuest({ tiny: process.env['JITSU_GUEST_TINY'] === '1' });
    env = await createVmEnv(4);
  });
  afterAll(async () => {
    await env?.cleanup((h, s) => backend.stop(h, s, 'destroy', AbortSignal.timeout(10_000)));
    const rows = Object.entries(figures).map(([k, v]) => `${k}: first frame ${v.ready.toFixed(0)} ms, first HTTP byte ${v.firstByte.toFixed(0)} ms (median of ${RUNS})`);
    if (rows.length) console.log(`[qemu boot]\n  ${rows.join('\n  ')}`);
  });

  async function measure(label: string, s: ServiceSpec): Promise<void> {
    const ready: number[] = [];
    const fb: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const h = await backend.start(s, AbortSignal.timeout(15_000));
      env.track(h, s);
      await backend.ready(h, s, AbortSignal.timeout(60_000));
      ready.push(performance.now() - t0);
      fb.push(await firstByteMs(`http://${s.network.ip}/`, t0, 60_000));
      expect(await curl(`http://${s.network.ip}/`)).toBe(`jitsu guest ${s.service}\n`);
      await backend.stop(h, s, 'destroy', AbortSignal.timeout(10_000));
    }
    figures[label] = { ready: median(ready), firstByte: median(fb) };
  }

  it('stock Debian cloud kernel (microvm, acpi=on)', async () => {
    await measure('stock', env.spec('jt4-bt-stock', 10, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4t40'] }));
    expect(figures['stock']!.firstByte).toBeGreaterThan(0);
  });

  it.skipIf(!process.env['JITSU_GUEST_TINY'] && !tinyCached())('tiny kernel from linux-source (microvm, acpi=off)', async () => {
    await measure('tiny', env.spec('jt4-bt-tiny', 11, { kernel: [img.tiny!], initrd: [img.initrd], tap: ['jt4t41'], acpi: ['off'] }));
    expect(figures['tiny']!.firstByte).toBeGreaterThan(0);
  });
});

/** The tiny kernel costs minutes to build cold: measured only when it is already cached (or asked for). */
function tinyCached(): boolean {
  try {
    return statSync(`${process.env['JITSU_CACHE'] || '/var/cache/jitsu'}/guest/vmlinux-tiny`).isFile();
  } catch {
    return false;
  }
}
