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
const CAPS = ['CAP_NET_BIND_SERVICE'];

/** A minimal, locked-down config for a plain root filesystem. */
export function defaultOciConfig(rootfs: string, args: readonly string[]): OciConfig {
  return {
    ociVersion: '1.0.2',
    root: { path: rootfs, readonly: true },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [...args],
      env: [DEFAULT_PATH],
      cwd: '/',
      noNewPrivileges: true,
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
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
    },
  };
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
