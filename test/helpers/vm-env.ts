/**
 * Test rig for the VM backends (jt4 area): a private bridge `jt4b<N>` with the host on
 * 10.203.N.1/24, the project's guest image (built once by scripts/build-guest.sh, cached), service
 * specs on that bridge, curl with a bounded time, and cleanup of every VM, tap and bridge made.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { ensureBridge, ensureHostAddresses, linkExists, removeBridge, stableMac } from '../../src/network/index.js';
import { ipBatch } from '../../src/network/exec.js';

export const run = promisify(execFile);
const repo = new URL('../../', import.meta.url).pathname;

export interface GuestImage {
  dir: string;
  stock: string;
  tiny?: string;
  initrd: string;
  /** Seconds the build step took in this run (≈0 when cached). */
  buildSeconds: number;
}

/** Build (or reuse) the guest image. `tiny` also builds the tiny kernel (minutes, cold). */
export async function buildGuest(opts: { tiny?: boolean } = {}): Promise<GuestImage> {
  const t0 = performance.now();
  const args = opts.tiny ? ['--tiny'] : [];
  await run(join(repo, 'scripts/build-guest.sh'), args, { timeout: 30 * 60_000, maxBuffer: 4 * 1024 * 1024 });
  const { stdout } = await run(join(repo, 'scripts/build-guest.sh'), ['--print-dir']);
  const dir = stdout.trim();
  const tiny = join(dir, 'vmlinux-tiny');
  return {
    dir,
    stock: join(dir, 'vmlinux-stock'),
    ...(existsSync(tiny) ? { tiny } : {}),
    initrd: join(dir, 'initramfs.cpio.gz'),
    buildSeconds: (performance.now() - t0) / 1000,
  };
}

export interface VmEnv {
  bridge: string;
  subnet: number;
  gateway: string;
  runRoot: string;
  /** A spec for `service` at 10.203.N.<host> with its own runDir. */
  spec(service: string, host: number, options: Record<string, string[]>, extra?: Partial<ServiceSpec>): ServiceSpec;
  /** Remember a started VM so cleanup() stops it even when the test failed half-way. */
  track(handle: BackendHandle, spec: ServiceSpec): void;
  cleanup(stop: (h: BackendHandle, s: ServiceSpec) => Promise<void>): Promise<void>;
}

export async function createVmEnv(subnet: number, backend: ServiceSpec['backend'] = 'qemu'): Promise<VmEnv> {
  const bridge = `jt4b${subnet}`;
  const gateway = `10.203.${subnet}.1`;
  const runRoot = mkdtempSync(join(tmpdir(), 'jt4-vm-'));
  const live: { handle: BackendHandle; spec: ServiceSpec }[] = [];
  await ensureBridge(bridge);
  await ensureHostAddresses(bridge, [`${gateway}/24`]);
  return {
    bridge,
    subnet,
    gateway,
    runRoot,
    spec: (service, host, options, extra = {}) => {
      const runDir = join(runRoot, service);
      rmSync(runDir, { recursive: true, force: true });
      mkdirSync(runDir, { recursive: true });
      return {
        service,
        backend,
        network: { bridge, family: 4, ip: `10.203.${subnet}.${host}`, prefixLength: 24, gateway, mac: stableMac(service) },
        mask: 'none',
        options,
        runDir,
        ...extra,
      };
    },
    track: (handle, spec) => void live.push({ handle, spec }),
    cleanup: async (stop) => {
      for (const { handle, spec } of live) await stop(handle, spec).catch(() => undefined);
      // Taps of VMs whose start failed half-way.
      for (const { spec } of live) {
        const tap = spec.options['tap']?.[0];
        if (tap && linkExists(tap)) await ipBatch([`link del ${tap}`]).catch(() => undefined);
      }
      await removeBridge(bridge);
      rmSync(runRoot, { recursive: true, force: true });
    },
  };
}

/** curl the guest's page; resolves with the body, rejects after `maxSeconds`. */
export async function curl(url: string, maxSeconds = 3): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', String(maxSeconds), url], { timeout: (maxSeconds + 2) * 1000 });
  return stdout;
}

export async function curlFails(url: string, maxSeconds = 1): Promise<boolean> {
  try {
    await curl(url, maxSeconds);
    return false;
  } catch {
    return true;
  }
}

/** Poll curl until it answers (bounded); resolves with ms from `t0` to the first full reply. */
export async function firstByteMs(url: string, t0: number, boundMs: number): Promise<number> {
  const deadline = t0 + boundMs;
  while (performance.now() < deadline) {
    try {
      await run('curl', ['-s', '--max-time', '0.5', url], { timeout: 2000 });
      return performance.now() - t0;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error(`${url} gave no reply within ${boundMs} ms`);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
