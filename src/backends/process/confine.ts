/**
 * Confinement of process services: how their memory, CPU and task count are bounded (who they
 * run as is common/identity.ts). The launcher (native/activate.c) applies it to the command only,
 * just before exec; this module picks the mechanism the host offers.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JitsuError } from '../../errors.js';
import type { Identity } from '../common/identity.js';

/** Per-service resource limits, as given by the service keys. */
export interface ResourceLimits {
  memoryBytes?: number;
  /** CPU bandwidth in cores (0.5 = half a core). */
  cpus?: number;
  tasks?: number;
}

export function hasLimits(l: ResourceLimits): boolean {
  return l.memoryBytes !== undefined || l.cpus !== undefined || l.tasks !== undefined;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** `256M`, `1G`, `65536K`, `1048576`: bytes, or undefined when not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)([KMG]?)(?:i?B)?$/i.exec(text);
  if (!m) return undefined;
  const bytes = Number(m[1]) * SIZE_UNITS[m[2]!.toUpperCase()]!;
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The cgroup v2 root when the host is pure cgroup v2 with the controllers limits need, else undefined. */
export function cgroupV2Root(mountinfo: string, controllersOf: (root: string) => string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const mountPoint = line.slice(0, sep).split(' ')[4];
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (mountPoint !== '/sys/fs/cgroup' || fsType !== 'cgroup2') continue;
    const have = new Set(controllersOf(mountPoint).trim().split(/\s+/));
    return ['memory', 'pids', 'cpu'].every((c) => have.has(c)) ? mountPoint : undefined;
  }
  return undefined;
}

let hostCgroupRoot: string | undefined | null = null;
function hostCgroupV2(): string | undefined {
  if (hostCgroupRoot === null) {
    try {
      hostCgroupRoot = cgroupV2Root(readFileSync('/proc/self/mountinfo', 'utf8'), (root) => readFileSync(join(root, 'cgroup.controllers'), 'utf8'));
    } catch {
      hostCgroupRoot = undefined;
    }
  }
  return hostCgroupRoot;
}

/** The cgroup v2 interface files (name → content) for `limits`. */
export function cgroupFiles(limits: ResourceLimits): Record<string, string> {
  const files: Record<string, string> = {};
  if (limits.memoryBytes !== undefined) {
    files['memory.max'] = String(limits.memoryBytes);
    // No swap: past memory= the kernel's OOM killer ends the service, it does not slow to a crawl.
    files['memory.swap.max'] = '0';
  }
  if (limits.tasks !== undefined) files['pids.max'] = String(limits.tasks);
  if (limits.cpus !== undefined) files['cpu.max'] = `${Math.max(1000, Math.round(limits.cpus * 100_000))} 100000`;
  return files;
}

/** How limits are enforced on this host: the mechanism's name and the launcher flags. */
export interface LimitPlan {
  mechanism: 'cgroup2' | 'rlimit' | 'none';
  args: string[];
}

/**
 * Limits through cgroup v2 when the host offers it (a cgroup `jitsu/<stem>` with memory.max,
 * pids.max, cpu.max that the launcher joins), else rlimits: memory= as RLIMIT_AS (address space,
 * so an allocation past it fails), tasks= as RLIMIT_NPROC (counted per uid, so across every service
 * of that user, and never enforced for root). cpu= has no rlimit equivalent (RLIMIT_CPU bounds
 * total CPU seconds, not a rate): BOOT_FAILED rather than a limit silently not applied.
 */
export function planLimits(service: string, stem: string, limits: ResourceLimits, identity: Identity | undefined, cgroupRoot = hostCgroupV2()): LimitPlan {
  if (!hasLimits(limits)) return { mechanism: 'none', args: [] };
  if (cgroupRoot !== undefined) {
    const parent = join(cgroupRoot, 'jitsu');
    const dir = join(parent, stem);
    try {
      if (!existsSync(parent)) mkdirSync(parent);
      // Controllers are enabled top-down; a child cgroup only gets what its parent delegates.
      writeFileSync(join(cgroupRoot, 'cgroup.subtree_control'), '+memory +pids +cpu');
      writeFileSync(join(parent, 'cgroup.subtree_control'), '+memory +pids +cpu');
      // A previous boot's cgroup (empty once its processes ended) is replaced: fresh counters.
      if (existsSync(dir)) rmdirSync(dir);
      mkdirSync(dir);
      for (const [file, value] of Object.entries(cgroupFiles(limits))) writeFileSync(join(dir, file), value);
    } catch (err) {
      throw new JitsuError('BOOT_FAILED', `service ${service}: cannot set up cgroup ${dir} for memory=/cpu=/tasks=: ${(err as Error).message}`, { service, cgroup: dir }, { cause: err });
    }
    return { mechanism: 'cgroup2', args: ['--cgroup', dir] };
  }
  const noCgroup = 'this host has no cgroup v2 with the memory, pids and cpu controllers (cgroup v1 or hybrid)';
  if (limits.cpus !== undefined) {
    throw new JitsuError('BOOT_FAILED', `service ${service}: cpu= needs cgroup v2 and ${noCgroup}: remove cpu= (memory= and tasks= fall back to rlimits)`, { service, key: 'cpu' });
  }
  if (limits.tasks !== undefined && identity === undefined) {
    throw new JitsuError('BOOT_FAILED', `service ${service}: tasks= falls back to RLIMIT_NPROC here (${noCgroup}), which root ignores: drop user=root or tasks=`, { service, key: 'tasks' });
  }
  const args: string[] = [];
  if (limits.memoryBytes !== undefined) args.push('--rlimit', `as=${limits.memoryBytes}`);
  if (limits.tasks !== undefined) args.push('--rlimit', `nproc=${limits.tasks}`);
  return { mechanism: 'rlimit', args };
}
