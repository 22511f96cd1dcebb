/**
 * KVM or TCG? `/dev/kvm` existing proves nothing (here it is a nested PVM that aborts real guests),
 * so `accel=auto` boots the guest once under KVM, without network, and accepts KVM only if the
 * guest reaches userspace within a bound. The verdict is cached per host (in memory and on disk),
 * so the probe costs one boot per host, not per service.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { dirname, join } from 'node:path';
import type { Accel } from './argv.js';
import { buildProbeArgs } from './argv.js';
import type { QemuConfig } from './options.js';

export const PROBE_TIMEOUT_MS = 8000;
/** Lines that prove the guest kernel handed over to userspace. */
const USERSPACE_MARKERS = ['jitsu-guest: userspace', 'Run /init as init process'];
const MAX_PROBE_OUTPUT = 256 * 1024;

export interface AccelVerdict {
  accel: Accel;
  /** Why: the probe's outcome in a few words (kept for logs and the README figures). */
  reason: string;
  host: string;
  at: string;
}

/** Host identity for the cache: the verdict changes with the machine, its kernel or QEMU. */
export function hostKey(binary: string): string {
  let qemuStamp = '';
  try {
    qemuStamp = String(statSync(binary.includes('/') ? binary : `/usr/bin/${binary}`).mtimeMs);
  } catch {
    // not at the usual place; hostname + kernel still identify the host
  }
  return `${hostname()}|${release()}|${binary}|${qemuStamp}`;
}

export function verdictPath(cacheRoot: string): string {
  return join(cacheRoot, 'qemu-accel.json');
}

let memo: { key: string; verdict: Promise<AccelVerdict> } | undefined;

/** Forget the in-memory verdict (tests). */
export function resetAccelMemo(): void {
  memo = undefined;
}

function readCached(path: string, key: string): AccelVerdict | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<AccelVerdict>;
    if (v.host === key && (v.accel === 'kvm' || v.accel === 'tcg') && typeof v.reason === 'string' && typeof v.at === 'string') return v as AccelVerdict;
  } catch {
    // absent or corrupt: probe again
  }
  return undefined;
}

function writeCached(path: string, v: AccelVerdict): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.tmp`, JSON.stringify(v) + '\n');
    renameSync(`${path}.tmp`, path);
  } catch {
    // a read-only cache only costs a probe per process
  }
}

/** Boot the guest under KVM once; resolves with whether it reached userspace in time. */
export function probeKvm(cfg: Pick<QemuConfig, 'kernel' | 'initrd' | 'acpi' | 'binary'>, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ ok: boolean; reason: string }> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return Promise.resolve({ ok: false, reason: '/dev/kvm is missing or not accessible' });
  }
  return new Promise((resolve) => {
    const child = spawn(cfg.binary, buildProbeArgs(cfg), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let settled = false;
    const finish = (ok: boolean, reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // exited already
      }
      resolve({ ok, reason });
    };
    const onData = (d: Buffer): void => {
      if (out.length < MAX_PROBE_OUTPUT) out += d.toString('utf8');
      if (USERSPACE_MARKERS.some((m) => out.includes(m))) finish(true, 'KVM guest reached userspace');
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('error', (err) => finish(false, `cannot run ${cfg.binary}: ${err.message}`));
    child.on('exit', (code, sig) => {
      const last = out.trim().split('\n').slice(-2).join(' | ').slice(0, 300);
      finish(false, `KVM guest exited (${sig ?? `status ${code}`}) before userspace: ${last || 'no output'}`);
    });
    const timer = setTimeout(() => finish(false, `KVM guest did not reach userspace within ${timeoutMs} ms`), timeoutMs);
  });
}

/**
 * The accelerator for a service. `kvm`/`tcg` are taken as given; `auto` uses the cached verdict
 * or runs the probe (once per process, whatever the number of concurrent boots).
 */
export async function resolveAccel(cfg: Pick<QemuConfig, 'accel' | 'kernel' | 'initrd' | 'acpi' | 'binary'>, cacheRoot: string): Promise<AccelVerdict> {
  const key = hostKey(cfg.binary);
  const at = new Date().toISOString();
  if (cfg.accel !== 'auto') return { accel: cfg.accel, reason: `accel=${cfg.accel} requested`, host: key, at };
  if (memo?.key === key) return memo.verdict;
  const path = verdictPath(cacheRoot);
  const verdict = (async (): Promise<AccelVerdict> => {
    const cached = readCached(path, key);
    if (cached) return cached;
    const probe = await probeKvm(cfg);
    const v: AccelVerdict = { accel: probe.ok ? 'kvm' : 'tcg', reason: probe.reason, host: key, at };
    writeCached(path, v);
    return v;
  })();
  memo = { key, verdict };
  return verdict;
}
