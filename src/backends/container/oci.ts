/**
 * The OCI runtime config (config.json) a service runs with: generated for rootfs=, or the bundle's own
 * config with the service's netns, activation env and the service keys laid over it. Pure functions.
 */
import { isAbsolute, resolve } from 'node:path';
import type { JsonValue } from '../backend.js';
import type { ContainerConfig } from './options.js';

export type OciConfig = { [key: string]: JsonValue };

export interface OciInputs {
  config: ContainerConfig;
  /** Hostname inside the container (the service name, sanitised). */
  hostname: string;
  /** /run/netns/jitsu-<service>: the container joins it instead of getting a fresh netns. */
  netnsPath: string;
  /** Ports pre-bound by the launcher and preserved as fds 3.. (empty: no socket activation). */
  listenPorts: readonly number[];
  /**
   * jitsu-preload.so for a program that binds its own ports: bind-mounted read-only into the
   * container and put in front of its LD_PRELOAD; `reportDir` (host) is mounted writable for its
   * claims report. Only with listenPorts.
   */
  preload?: { library: string; reportDir: string };
}

/**
 * Where the preload library and its report directory appear inside the container: in its /dev
 * tmpfs, so crun creates the mount points there, never in the (possibly read-only, shared) rootfs.
 */
export const PRELOAD_IN_CONTAINER = '/dev/.jitsu/preload.so';
export const REPORT_DIR_IN_CONTAINER = '/dev/.jitsu/run';
/** The claims report file, in the report directory (same name inside and on the host). */
export const CLAIMS_FILE = 'claims';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Who a rootfs= container runs as unless user= says otherwise: nobody/nogroup, the same ids in any rootfs. */
export const DEFAULT_CONTAINER_USER = { uid: 65534, gid: 65534 };

/**
 * Syscalls a container never needs and that widen the kernel's attack surface: Docker's default
 * profile's blocked set (kernel modules, kexec, reboot, mount/namespace/keyring/BPF/perf/ptrace,
 * clock setting, swap, NUMA policy, userfaultfd, the new mount API), each failing with EPERM. A
 * deny-list, so any ordinary program runs unchanged; the runtime spec itself defines no default
 * profile and `crun spec` writes none.
 */
export const DEFAULT_SECCOMP_DENIED = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module', 'finit_module', 'fsconfig', 'fsmount',
  'fsopen', 'fspick', 'get_kernel_syms', 'get_mempolicy', 'init_module', 'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load',
  'keyctl', 'lookup_dcookie', 'mbind', 'mount', 'mount_setattr', 'move_mount', 'move_pages', 'name_to_handle_at', 'nfsservctl',
  'open_by_handle_at', 'open_tree', 'perf_event_open', 'pivot_root', 'process_vm_readv', 'process_vm_writev', 'ptrace', 'query_module',
  'quotactl', 'reboot', 'request_key', 'set_mempolicy', 'setns', 'settimeofday', 'swapoff', 'swapon', 'sysfs', '_sysctl', 'umount2',
  'unshare', 'uselib', 'userfaultfd', 'ustat', 'vm86', 'vm86old',
];

/** EPERM (1), as a denied syscall would fail without a capability. */
export const DEFAULT_SECCOMP: OciConfig = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  syscalls: [{ names: DEFAULT_SECCOMP_DENIED, action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
};

/** A minimal, locked-down config for a plain root filesystem. */
export function defaultOciConfig(rootfs: string, args: readonly string[]): OciConfig {
  return {
    ociVersion: '1.0.2',
    root: { path: rootfs, readonly: true },
    process: {
      terminal: false,
      user: { ...DEFAULT_CONTAINER_USER },
      args: [...args],
      env: [DEFAULT_PATH],
      cwd: '/',
      noNewPrivileges: true,
      // No capability at all: a port below 1024 needs none in the service's own netns (sysctl below).
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/sched_debug', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      seccomp: DEFAULT_SECCOMP,
      // The netns holds only this service's address: no system service to shadow on a low port.
      sysctl: { 'net.ipv4.ip_unprivileged_port_start': '0' },
    },
  };
}

/** The uid/gid the container's process runs as (process.user), for files it must write. */
export function containerUser(config: OciConfig): { uid: number; gid: number } {
  const proc = isRecord(config['process']) ? config['process'] : {};
  const user = isRecord(proc['user']) ? proc['user'] : {};
  return { uid: typeof user['uid'] === 'number' ? user['uid'] : 0, gid: typeof user['gid'] === 'number' ? user['gid'] : 0 };
}

function isRecord(v: JsonValue | undefined): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const ACTIVATION_ENV = /^(LISTEN_(FDS|PID|FDNAMES)|JITSU_READY_REPORT)=/;

function rootPathOf(base: OciConfig, bundleDir: string | undefined): string {
  const root = isRecord(base['root']) ? base['root'] : {};
  const rootPath = typeof root['path'] === 'string' ? root['path'] : 'rootfs';
  return bundleDir !== undefined && !isAbsolute(rootPath) ? resolve(bundleDir, rootPath) : rootPath;
}

/** The program the container runs (process.args[0], after `exec=`), its root (host path) and PATH. */
export function containerProgram(base: OciConfig, config: ContainerConfig, bundleDir?: string): { root: string; program: string | undefined; path: string } {
  const proc = isRecord(base['process']) ? base['process'] : {};
  const baseArgs = Array.isArray(proc['args']) ? proc['args'] : [];
  const first = config.args ? config.args[0] : baseArgs[0];
  const env = [...(Array.isArray(proc['env']) ? proc['env'] : []), ...config.env].filter((e): e is string => typeof e === 'string');
  const path = env.filter((e) => e.startsWith('PATH=')).at(-1) ?? DEFAULT_PATH;
  return { root: rootPathOf(base, bundleDir), program: typeof first === 'string' ? first : undefined, path: path.slice('PATH='.length) };
}

/**
 * Lays the service over a base config (a bundle's, or `defaultOciConfig`). `bundleDir` resolves a
 * relative root.path, since the runtime bundle lives elsewhere (the service's runDir).
 */
export function serviceOciConfig(base: OciConfig, inputs: OciInputs, bundleDir?: string): OciConfig {
  const out = structuredClone(base);
  const { config } = inputs;

  const root = isRecord(out['root']) ? out['root'] : {};
  root['path'] = rootPathOf(base, bundleDir);
  if (config.readonly !== undefined) root['readonly'] = config.readonly;
  out['root'] = root;
  out['hostname'] = inputs.hostname;

  const proc = isRecord(out['process']) ? out['process'] : {};
  // No console socket is ever passed: a terminal would make crun fail.
  proc['terminal'] = false;
  if (config.args) proc['args'] = [...config.args];
  if (config.cwd !== undefined) proc['cwd'] = config.cwd;
  if (config.user !== undefined) proc['user'] = { ...config.user };
  else if (typeof proc['cwd'] !== 'string') proc['cwd'] = '/';
  const env = (Array.isArray(proc['env']) ? proc['env'] : []).filter((e): e is string => typeof e === 'string' && !ACTIVATION_ENV.test(e));
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
  env.push(...config.env);
  if (inputs.listenPorts.length > 0) {
    // crun sets LISTEN_PID itself (to the container process) when it runs with LISTEN_FDS in its env.
    env.push(`LISTEN_FDS=${inputs.listenPorts.length}`, `LISTEN_FDNAMES=${inputs.listenPorts.map((p) => `tcp-${p}`).join(':')}`);
  }
  if (inputs.preload && inputs.listenPorts.length > 0) {
    const previous = env.findIndex((e) => e.startsWith('LD_PRELOAD='));
    const others = previous >= 0 ? env.splice(previous, 1)[0]!.slice('LD_PRELOAD='.length) : '';
    env.push(`LD_PRELOAD=${PRELOAD_IN_CONTAINER}${others ? `:${others}` : ''}`, `JITSU_READY_REPORT=${REPORT_DIR_IN_CONTAINER}/${CLAIMS_FILE}`);
    const mounts = Array.isArray(out['mounts']) ? out['mounts'] : [];
    mounts.push(
      { destination: PRELOAD_IN_CONTAINER, type: 'bind', source: inputs.preload.library, options: ['bind', 'ro', 'nosuid', 'nodev'] },
      { destination: REPORT_DIR_IN_CONTAINER, type: 'bind', source: inputs.preload.reportDir, options: ['bind', 'rw', 'nosuid', 'nodev', 'noexec'] },
    );
    out['mounts'] = mounts;
  }
  proc['env'] = env;
  out['process'] = proc;

  const linux = isRecord(out['linux']) ? out['linux'] : {};
  const namespaces = (Array.isArray(linux['namespaces']) ? linux['namespaces'] : []).filter((ns) => !(isRecord(ns) && ns['type'] === 'network'));
  namespaces.push({ type: 'network', path: inputs.netnsPath });
  linux['namespaces'] = namespaces;
  out['linux'] = linux;
  return out;
}
