import { isAbsolute } from 'node:path';
import type { OptionSpec } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { CommandSyntaxError, parseCommand } from '../common/command-line.js';
import type { ParsedCommand } from '../common/command-line.js';
import { parseSize, type ResourceLimits } from './confine.js';
import { DEFAULT_SERVICE_USER, ROOT_USER } from '../common/identity.js';

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

function validateExec(value: string): string | undefined {
  try {
    parseCommand(value);
    return undefined;
  } catch (err) {
    if (err instanceof CommandSyntaxError) return `exec command ${err.message}: e.g. exec="node server.js --port 8080"`;
    throw err;
  }
}

function validatePort(value: string): string | undefined {
  return /^\d{1,5}$/.test(value) && Number(value) >= 1 && Number(value) <= 65535
    ? undefined
    : `port must be a TCP port number 1-65535, got "${value}"`;
}

function validateEnv(value: string): string | undefined {
  const eq = value.indexOf('=');
  return eq > 0 && ENV_KEY.test(value.slice(0, eq)) ? undefined : `env must be KEY=VALUE with KEY like [A-Za-z_][A-Za-z0-9_]*, got "${value}"`;
}

function validateCwd(value: string): string | undefined {
  return isAbsolute(value) ? undefined : `cwd must be an absolute path, got "${value}"`;
}

const NAME_OR_ID = /^([a-z_][a-z0-9_.-]{0,31}\$?|\d{1,10})$/i;
const validName = (key: string) => (v: string): string | undefined =>
  NAME_OR_ID.test(v) ? undefined : `${key} must be a ${key} name or a numeric id, got "${v}"`;
const validBool = (key: string) => (v: string): string | undefined => (v === 'true' || v === 'false' ? undefined : `${key} must be true or false, got "${v}"`);

/** memory=, cpu=, tasks=: shared with the container backend's keys of the same name. */
export const limitOptions: readonly OptionSpec[] = [
  {
    key: 'memory',
    description: 'memory limit: bytes with an optional K/M/G suffix (cgroup v2 memory.max, else RLIMIT_AS: address space)',
    example: '256M',
    validate: (v) => (parseSize(v) !== undefined ? undefined : `memory must be a size like 256M, 1G or 65536K, got "${v}"`),
  },
  {
    key: 'cpu',
    description: 'CPU bandwidth in cores, e.g. 0.5 (cgroup v2 cpu.max; a host without cgroup v2 fails the boot rather than ignore it)',
    example: '0.5',
    validate: (v) => (/^\d+(\.\d+)?$/.test(v) && Number(v) >= 0.01 && Number(v) <= 1024 ? undefined : `cpu must be a number of cores from 0.01, e.g. 0.5, got "${v}"`),
  },
  {
    key: 'tasks',
    description: 'most processes+threads (cgroup v2 pids.max, else RLIMIT_NPROC: counted per user)',
    example: '64',
    validate: (v) => (/^\d{1,7}$/.test(v) && Number(v) >= 1 ? undefined : `tasks must be a positive integer, got "${v}"`),
  },
];

export function parseLimits(options: Readonly<Record<string, readonly string[]>>): ResourceLimits {
  const one = (key: string): string | undefined => options[key]?.[0];
  const memory = one('memory');
  const cpu = one('cpu');
  const tasks = one('tasks');
  return {
    ...(memory !== undefined ? { memoryBytes: parseSize(memory)! } : {}),
    ...(cpu !== undefined ? { cpus: Number(cpu) } : {}),
    ...(tasks !== undefined ? { tasks: Number(tasks) } : {}),
  };
}

const PRECREATE_MODES = ['off', 'on', 'warm'] as const;
export type PrecreateMode = (typeof PRECREATE_MODES)[number];

export const processOptions: readonly OptionSpec[] = [
  {
    key: 'exec',
    required: true,
    description:
      'command to run in the service\'s own network namespace (which owns its ip). Split into argv with simple quoting and exec\'d directly; commands using shell syntax (| ; & < > $ ` globs ...) run via /bin/sh -c',
    example: '"node dist/src/demo/http.js --port 80"',
    validate: validateExec,
  },
  {
    key: 'port',
    repeatable: true,
    description: 'TCP port the daemon binds inside the namespace before the command starts (socket activation, systemd LISTEN_FDS; fds 3.. in order)',
    example: '80',
    validate: validatePort,
  },
  { key: 'env', repeatable: true, description: 'extra environment variable for the command', example: 'MODE=prod', validate: validateEnv },
  { key: 'cwd', description: 'working directory of the command (absolute; entered as the service user, after /tmp is made private)', example: '/srv/app', validate: validateCwd },
  {
    key: 'user',
    description: `user the command runs as: a name or uid (default ${DEFAULT_SERVICE_USER}, created by scripts/setup.sh; no capabilities, no_new_privs). user=${ROOT_USER} runs it unconfined, with every capability`,
    example: DEFAULT_SERVICE_USER,
    validate: validName('user'),
  },
  { key: 'group', description: "group the command runs as: a name or gid (default: the user's primary group)", example: DEFAULT_SERVICE_USER, validate: validName('group') },
  { key: 'private_tmp', description: "give the command an empty private /tmp (64 MiB tmpfs, its own mount namespace): true (default) or false (the host's /tmp)", example: 'true', validate: validBool('private_tmp') },
  { key: 'read_only', description: 'make / and every mount under it read-only for the command (except its private /tmp): true or false (default)', example: 'true', validate: validBool('read_only') },
  {
    key: 'precreate',
    description:
      'on: while the service is stopped, keep its next command launched up to the exec (in its netns, sockets bound, confined, waiting), so a summon only lets it exec; it holds a small process and its sockets meanwhile. warm: keep the next command running until it serves, then frozen (SIGSTOP) off the bridge, so a summon only thaws it; it holds the memory of the whole program meanwhile. off (default): launch at each start',
    example: 'on',
    validate: (v) => (PRECREATE_MODES.includes(v as PrecreateMode) ? undefined : `precreate must be ${PRECREATE_MODES.join(', ')}, got "${v}"`),
  },
  ...limitOptions,
];

/** Who the command runs as and what it may see. */
export interface ProcessConfinement {
  user: string;
  group?: string;
  privateTmp: boolean;
  readOnly: boolean;
  limits: ResourceLimits;
}

export interface ProcessConfig {
  command: ParsedCommand;
  ports: number[];
  env: Record<string, string>;
  cwd?: string;
  confinement: ProcessConfinement;
  /** What prepare() holds for the next start: nothing (off), the command up to its exec (on), or the command serving, frozen (warm). */
  precreate: PrecreateMode;
}

/** Validate the backend keys of one service; CONFIG_INVALID names the key and the fix. */
export function parseProcessOptions(service: string, options: Readonly<Record<string, readonly string[]>>): ProcessConfig {
  const known = new Set(processOptions.map((o) => o.key));
  for (const key of Object.keys(options)) {
    if (!known.has(key)) {
      throw new JitsuError('CONFIG_INVALID', `service ${service}: unknown process backend key "${key}" (known: ${[...known].join(', ')})`, { service, key });
    }
  }
  for (const spec of processOptions) {
    const values = options[spec.key] ?? [];
    if (spec.required && values.length === 0) {
      throw new JitsuError('CONFIG_INVALID', `service ${service}: the process backend needs ${spec.key}= (e.g. ${spec.key}=${spec.example})`, { service, key: spec.key });
    }
    if (!spec.repeatable && values.length > 1) {
      throw new JitsuError('CONFIG_INVALID', `service ${service}: ${spec.key}= given ${values.length} times; give it once`, { service, key: spec.key });
    }
    for (const v of values) {
      const problem = spec.validate?.(v);
      if (problem) throw new JitsuError('CONFIG_INVALID', `service ${service}: ${problem}`, { service, key: spec.key, value: v });
    }
  }
  const env: Record<string, string> = {};
  for (const kv of options['env'] ?? []) {
    const eq = kv.indexOf('=');
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const ports = [...new Set((options['port'] ?? []).map(Number))];
  const cwd = options['cwd']?.[0];
  const group = options['group']?.[0];
  const confinement: ProcessConfinement = {
    user: options['user']?.[0] ?? DEFAULT_SERVICE_USER,
    ...(group !== undefined ? { group } : {}),
    privateTmp: (options['private_tmp']?.[0] ?? 'true') === 'true',
    readOnly: options['read_only']?.[0] === 'true',
    limits: parseLimits(options),
  };
  return { command: parseCommand(options['exec']![0]!), ports, env, ...(cwd ? { cwd } : {}), confinement, precreate: (options['precreate']?.[0] ?? 'off') as PrecreateMode };
}

