import { isAbsolute } from 'node:path';
import type { MaskMode, OptionSpec } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { CommandSyntaxError, parseCommand } from './argv.js';
import type { ParsedCommand } from './argv.js';

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
  { key: 'cwd', description: 'working directory of the command (absolute)', example: '/srv/app', validate: validateCwd },
];

export interface ProcessConfig {
  command: ParsedCommand;
  ports: number[];
  env: Record<string, string>;
  cwd?: string;
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
  return { command: parseCommand(options['exec']![0]!), ports, env, ...(cwd ? { cwd } : {}) };
}

/** The mask a process service gets when it names none: `activate` with ports to pre-bind, else `none`. */
export function defaultProcessMask(options: Readonly<Record<string, readonly string[]>>): MaskMode {
  return (options['port'] ?? []).length > 0 ? 'activate' : 'none';
}
