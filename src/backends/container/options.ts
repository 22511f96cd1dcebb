/** The container backend's keys: validation (CONFIG_INVALID naming the key and the fix) and defaults. */
import { isAbsolute } from 'node:path';
import type { OptionSpec } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { CommandSyntaxError, parseCommand } from '../common/command-line.js';

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Environment names the backend owns: socket activation must not be spoofed by a service key. */
const RESERVED_ENV = new Set(['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']);

export interface ContainerConfig {
  /** Existing OCI bundle (directory holding config.json); its config is the base. */
  bundle?: string;
  /** Root filesystem directory; the backend generates the whole config. */
  rootfs?: string;
  /** Process args; from the bundle when absent (bundle only). */
  args?: string[];
  ports: number[];
  env: string[];
  cwd?: string;
  /** Root filesystem read-only (default true for rootfs=, the bundle's choice for bundle=). */
  readonly?: boolean;
  /** process.user (default 65534:65534 for rootfs=, the bundle's choice for bundle=). */
  user?: { uid: number; gid: number };
  /** Keep one container created ahead while the service is stopped, so a start is only `crun start`. */
  precreate: boolean;
}

const absolute = (key: string) => (v: string) => (isAbsolute(v) ? undefined : `${key} must be an absolute path, got "${v}"`);

export const containerOptions: readonly OptionSpec[] = [
  {
    key: 'bundle',
    description: "existing OCI bundle directory (config.json + rootfs); jitsu copies its config, joins it to the service's netns and adds the activation env",
    example: '/srv/bundles/www',
    validate: absolute('bundle'),
  },
  {
    key: 'rootfs',
    description: 'root filesystem directory; jitsu writes the OCI config itself (read-only root, tmpfs /tmp, user 65534, no capabilities, no_new_privs, a default seccomp profile)',
    example: '/var/cache/jitsu/rootfs/busybox',
    validate: absolute('rootfs'),
  },
  {
    key: 'exec',
    description: 'process to run in the container, split like the process backend\'s exec= (shell syntax runs via /bin/sh -c); required with rootfs=',
    example: '"/bin/httpd -f -p 80 -h /www"',
    validate: (v) => {
      try {
        parseCommand(v);
        return undefined;
      } catch (err) {
        if (err instanceof CommandSyntaxError) return `exec command ${err.message}`;
        throw err;
      }
    },
  },
  {
    key: 'port',
    repeatable: true,
    description: 'TCP port bound inside the netns before crun starts and passed to the container as fd 3.. (LISTEN_FDS)',
    example: '80',
    validate: (v) => (/^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535 ? undefined : `port must be a TCP port number 1-65535, got "${v}"`),
  },
  {
    key: 'env',
    repeatable: true,
    description: 'extra environment variable KEY=VALUE for the container process',
    example: 'MODE=prod',
    validate: (v) => {
      const eq = v.indexOf('=');
      if (eq <= 0 || !ENV_KEY.test(v.slice(0, eq))) return `env must be KEY=VALUE with KEY like [A-Za-z_][A-Za-z0-9_]*, got "${v}"`;
      return RESERVED_ENV.has(v.slice(0, eq)) ? `env ${v.slice(0, eq)} is set by jitsu for socket activation; use port= instead` : undefined;
    },
  },
  { key: 'cwd', description: 'working directory inside the container (absolute)', example: '/www', validate: absolute('cwd') },
  {
    key: 'user',
    description: 'UID[:GID] the container process runs as, numeric (default 65534:65534, nobody, for rootfs=; the bundle\'s own for bundle=); 0 for root',
    example: '1000:1000',
    validate: (v) => (/^\d{1,10}(:\d{1,10})?$/.test(v) ? undefined : `user must be UID or UID:GID (numbers), got "${v}"`),
  },
  {
    key: 'precreate',
    description:
      'on: while the service is stopped, keep its next container created (crun create: namespaces, mounts, pre-bound sockets, the process waiting to exec), so a summon is only crun start; it holds that memory and its namespaces meanwhile. off (default): create at each start',
    example: 'on',
    validate: (v) => (v === 'on' || v === 'off' ? undefined : `precreate must be on or off, got "${v}"`),
  },
  {
    key: 'readonly',
    description: 'mount the root filesystem read-only: true (default with rootfs=) or false',
    example: 'false',
    validate: (v) => (v === 'true' || v === 'false' ? undefined : 'readonly must be true or false'),
  },
];

export function parseContainerOptions(service: string, options: Readonly<Record<string, readonly string[]>>): ContainerConfig {
  const fail = (key: string, message: string): never => {
    throw new JitsuError('CONFIG_INVALID', `service ${service}: ${key}: ${message}`, { service, key });
  };
  const known = new Set(containerOptions.map((o) => o.key));
  for (const key of Object.keys(options)) {
    if (!known.has(key)) fail(key, `unknown container key; use one of ${[...known].join(', ')}`);
  }
  for (const spec of containerOptions) {
    const values = options[spec.key] ?? [];
    if (!spec.repeatable && values.length > 1) fail(spec.key, `given ${values.length} times; give it once`);
    for (const v of values) {
      const problem = spec.validate?.(v);
      if (problem) fail(spec.key, problem);
    }
  }
  const one = (key: string): string | undefined => options[key]?.[0];
  const bundle = one('bundle');
  const rootfs = one('rootfs');
  if ((bundle === undefined) === (rootfs === undefined)) fail('bundle', 'give exactly one of bundle=DIR (an OCI bundle) or rootfs=DIR (a root filesystem)');
  const exec = one('exec');
  if (rootfs !== undefined && exec === undefined) fail('exec', 'required with rootfs= (e.g. exec="/bin/httpd -f -p 80 -h /www")');
  const config: ContainerConfig = {
    ports: [...new Set((options['port'] ?? []).map(Number))],
    env: [...(options['env'] ?? [])],
    precreate: one('precreate') === 'on',
  };
  if (bundle !== undefined) config.bundle = bundle;
  if (rootfs !== undefined) config.rootfs = rootfs;
  if (exec !== undefined) config.args = parseCommand(exec).argv;
  const cwd = one('cwd');
  if (cwd !== undefined) config.cwd = cwd;
  const user = one('user');
  if (user !== undefined) {
    const [uid, gid] = user.split(':').map(Number);
    config.user = { uid: uid!, gid: gid ?? uid! };
  }
  const ro = one('readonly');
  if (ro !== undefined) config.readonly = ro === 'true';
  return config;
}
