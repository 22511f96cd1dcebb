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
}

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

const ACTIVATION_ENV = /^LISTEN_(FDS|PID|FDNAMES)=/;

/**
 * Lays the service over a base config (a bundle's, or `defaultOciConfig`). `bundleDir` resolves a
 * relative root.path, since the runtime bundle lives elsewhere (the service's runDir).
 */
export function serviceOciConfig(base: OciConfig, inputs: OciInputs, bundleDir?: string): OciConfig {
  const out = structuredClone(base);
  const { config } = inputs;

  const root = isRecord(out['root']) ? out['root'] : {};
  const rootPath = typeof root['path'] === 'string' ? root['path'] : 'rootfs';
  root['path'] = bundleDir !== undefined && !isAbsolute(rootPath) ? resolve(bundleDir, rootPath) : rootPath;
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
  proc['env'] = env;
  out['process'] = proc;

  const linux = isRecord(out['linux']) ? out['linux'] : {};
  const namespaces = (Array.isArray(linux['namespaces']) ? linux['namespaces'] : []).filter((ns) => !(isRecord(ns) && ns['type'] === 'network'));
  namespaces.push({ type: 'network', path: inputs.netnsPath });
  linux['namespaces'] = namespaces;
  out['linux'] = linux;
  return out;
}
