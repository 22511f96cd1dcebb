/**
 * Confinement of process services: who a service runs as, and how its memory, CPU and task count
 * are bounded. The launcher (native/activate.c) applies it to the command only, just before exec;
 * this module resolves names and picks the mechanism the host offers. The QEMU and container
 * backends share the user lookup.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JitsuError } from '../../errors.js';

/** The unprivileged system user services run as unless `user=` says otherwise; scripts/setup.sh creates it. */
export const DEFAULT_SERVICE_USER = 'jitsu-svc';

/** The explicit opt-out: `user=root` runs unconfined (uid 0, every capability), as before. */
export const ROOT_USER = 'root';

export interface Identity {
  user: string;
  uid: number;
  gid: number;
}

interface DbEntry {
  name: string;
  id: number;
  /** passwd: the primary group. */
  gid?: number;
}

function readDb(path: string, withGid: boolean): DbEntry[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: DbEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !/^\d+$/.test(f[2]!)) continue;
    out.push({ name: f[0]!, id: Number(f[2]), ...(withGid && /^\d+$/.test(f[3]!) ? { gid: Number(f[3]) } : {}) });
  }
  return out;
}

/** A name or a number, looked up in `entries`. */
function lookup(entries: DbEntry[], nameOrId: string): DbEntry | undefined {
  if (/^\d+$/.test(nameOrId)) return entries.find((e) => e.id === Number(nameOrId)) ?? { name: nameOrId, id: Number(nameOrId) };
  return entries.find((e) => e.name === nameOrId);
}

export interface IdentityFiles {
  passwd: string;
  group: string;
}

const SYSTEM_FILES: IdentityFiles = { passwd: '/etc/passwd', group: '/etc/group' };

/**
 * The uid/gid a service runs as: `user` (a name from /etc/passwd, or a number), `group` (a name
 * from /etc/group, or a number; default the user's primary group). Numbers need no entry. The
 * default user missing is the usual case on a host that never ran setup: the message says so.
 */
export function resolveIdentity(service: string, user: string, group: string | undefined, files: IdentityFiles = SYSTEM_FILES): Identity {
  const u = lookup(readDb(files.passwd, true), user);
  if (!u) {
    const fix =
      user === DEFAULT_SERVICE_USER
        ? `run scripts/setup.sh (or scripts/setup.sh --create-user) to create it, or set user=${ROOT_USER} to run the service unconfined`
        : `create it, or name an existing user (default ${DEFAULT_SERVICE_USER})`;
    throw new JitsuError('BOOT_FAILED', `service ${service}: user ${user} does not exist: ${fix}`, { service, key: 'user', value: user });
  }
  let gid = u.gid;
  if (group !== undefined) {
    const g = lookup(readDb(files.group, false), group);
    if (!g) throw new JitsuError('BOOT_FAILED', `service ${service}: group ${group} does not exist: create it or name an existing group`, { service, key: 'group', value: group });
    gid = g.id;
  }
  if (gid === undefined) {
    throw new JitsuError('BOOT_FAILED', `service ${service}: user ${user} is a bare uid without a primary group: set group= too`, { service, key: 'group' });
  }
  return { user: u.name, uid: u.id, gid };
}

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
