/**
 * scripts/build-guest.sh: a cold build from Debian packages into a fresh cache is byte-identical to
 * the shared cache's build (reproducible), writes its manifest, and a second run is a cache hit.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGuest } from '../helpers/vm-env.js';

const run = promisify(execFile);
const script = new URL('../../scripts/build-guest.sh', import.meta.url).pathname;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const canRun = process.getuid?.() === 0;

describe.skipIf(!canRun)('guest image build (scripts/build-guest.sh)', () => {
  const fresh = mkdtempSync(join(tmpdir(), 'jt4-guest-'));
  afterAll(() => rmSync(fresh, { recursive: true, force: true }));

  it('builds cold from Debian packages, reproducibly, then hits its cache', async () => {
    const shared = await buildGuest();
    const env = { ...process.env, JITSU_CACHE: fresh };
    const t0 = performance.now();
    await run(script, [], { env, timeout: 15 * 60_000 });
    const coldS = (performance.now() - t0) / 1000;
    const dir = join(fresh, 'guest');
    expect(sha(join(dir, 'initramfs.cpio.gz'))).toBe(sha(shared.initrd));
    expect(sha(join(dir, 'vmlinux-stock'))).toBe(sha(shared.stock));
    expect(readFileSync(join(dir, 'vmlinux-stock')).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const manifest = readFileSync(join(dir, 'manifest.txt'), 'utf8');
    expect(manifest).toMatch(/^stock_kernel linux-image-\S+-cloud-amd64=\S+$/m);
    expect(manifest).toMatch(/^initramfs busybox-static=/m);
    expect(manifest).toContain(`sha256 ${sha(join(dir, 'initramfs.cpio.gz'))}  initramfs.cpio.gz`);
    const t1 = performance.now();
    const { stderr } = await run(script, [], { env, timeout: 60_000 });
    const warmS = (performance.now() - t1) / 1000;
    expect(stderr).toContain('stock kernel: cached');
    expect(stderr).toContain('initramfs: cached');
    expect(warmS).toBeLessThan(10);
    console.log(`[guest] cold build (stock kernel + initramfs) ${coldS.toFixed(1)} s, cached re-run ${warmS.toFixed(1)} s`);
  });

  it('rejects unknown arguments with exit status 2', async () => {
    const err = await run(script, ['--bogus']).catch((e: unknown) => e as { code: number; stderr: string });
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toContain("unknown argument '--bogus'");
  });
});
