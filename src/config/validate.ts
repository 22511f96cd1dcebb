import { resolve } from 'node:path';
import type { Backend, BackendName, MaskMode, ReadyProbe } from '../backends/backend.js';
import { BACKEND_NAMES, MASK_MODES, STOP_MODES } from '../backends/backend.js';
import { getBackend, isBackendName } from '../backends/registry.js';
import { defaultGateway } from '../network/addr.js';
import { LOG_FORMATS, LOG_LEVELS } from '../observe/log.js';
import { RELAY_MODES } from '../synjitsu/masker.js';
import { ConfigError } from './errors.js';
import { flagByName } from './options.js';
import { handshake } from '../masking/handshake.js';
import { maskStrategy, supportedMasks } from '../masking/registry.js';
import { SUPERVISION_KEYS, isSupervisionKey, parsePolicy } from './supervision-keys.js';
import type { KeyValue } from './service-arg.js';
import type { Config, ServiceConfig } from './types.js';
import {
  parseBoolean,
  parseCidr,
  parseDnsName,
  parseEnum,
  parseHostPort,
  parseIfName,
  parseInteger,
  parseIp,
  parseNumber,
} from './values.js';

/** Flags and services as strings, before validation; the CLI and the config-file loader both produce it. */
export interface RawConfig {
  flags: Map<string, string[]>;
  services: KeyValue[][];
}

export interface ValidateContext {
  /** Upstreams to use when no -f is given (the CLI reads /etc/resolv.conf). */
  defaultForwarders: () => string[];
  /** Where backend option specs come from; the registry unless a test injects its own. */
  backend?: (name: BackendName) => Backend;
}

/** Where state lives without --state: the daemon's, and where the control commands look for it. */
export const DEFAULT_STATE_DIR = tableDefault('state');

const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

function tableDefault(key: string): string {
  const value = flagByName(key)?.default;
  if (value === undefined) throw new Error(`flag table: --${key} has no default`);
  return value;
}

function single(flags: Map<string, string[]>, key: string): string | undefined {
  const values = flags.get(key);
  if (!values || values.length === 0) return undefined;
  if (values.length > 1) throw new ConfigError(`--${key}`, `given ${values.length} times; give it once`);
  return values[0];
}

function list(flags: Map<string, string[]>, key: string): string[] | undefined {
  const values = flags.get(key);
  if (!values) return undefined;
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

export function validateConfig(raw: RawConfig, ctx: ValidateContext): Config {
  const f = raw.flags;
  const flag = (key: string): string | undefined => single(f, key);
  /** The flag's value, else its default from the one table (options.ts). */
  const value = (key: string): string => flag(key) ?? tableDefault(key);

  const bind = (list(f, 'bind') ?? [tableDefault('bind')]).map((a) => parseIp('--bind', a).ip);
  if (bind.length === 0) throw new ConfigError('--bind', 'no address given');
  const port = parseInteger('--port', value('port'), 0, 65535);
  const forwarderPort = parseInteger('--forwarder-port', value('forwarder-port'), 1, 65535);
  const forwarderList = list(f, 'forwarder');
  let forwarders: string[];
  if (forwarderList === undefined) forwarders = ctx.defaultForwarders();
  else if (forwarderList.includes('0.0.0.0')) forwarders = [];
  else forwarders = forwarderList.map((a) => parseIp('--forwarder', a).ip);

  const backendName = value('backend');
  if (!isBackendName(backendName)) throw new ConfigError('--backend', `"${backendName}" is not a backend: use ${BACKEND_NAMES.join('|')}`);

  const ttl = parseInteger('--ttl', value('ttl'), 0, 604800);
  const stateFlag = flag('state');
  const persistdb = flag('persistdb');
  if (stateFlag !== undefined && persistdb !== undefined) throw new ConfigError('--persistdb', 'is an alias of --state; give only --state');
  const synjitsu = flag('synjitsu');
  const metrics = flag('metrics');
  const hostCidr = flag('host-cidr');
  const backendUri = flag('backend-uri');

  const allowForward = list(f, 'allow-forward')?.map(parseAllowedClient);
  if (allowForward !== undefined && allowForward.length === 0) {
    throw new ConfigError('--allow-forward', 'no prefix given: give CIDRs (e.g. --allow-forward 192.0.2.0/24), or -f 0.0.0.0 to forward for nobody');
  }

  const config: Config = {
    bind,
    port,
    forwarders,
    forwarderPort,
    allowForward: allowForward ?? [],
    rrlRate: parseInteger('--rrl-rate', value('rrl-rate'), 0, 1_000_000_000),
    rrlSlip: parseInteger('--rrl-slip', value('rrl-slip'), 0, 100),
    backend: backendName,
    responseDelay: parseNumber('--delay', value('delay'), 0, 60),
    ttl,
    stopMode: parseEnum('--mode', value('mode'), STOP_MODES),
    synjitsuRelay: parseEnum('--synjitsu-relay', value('synjitsu-relay'), RELAY_MODES),
    stateDir: stateFlag ?? persistdb ?? tableDefault('state'),
    snapshotDir: parseSnapshotDir(value('snapshot-dir')),
    snapshotMaxMiB: parseInteger('--snapshot-max-mb', value('snapshot-max-mb'), 0, 16 * 1024 * 1024),
    logLevel: parseEnum('--log-level', value('log-level'), LOG_LEVELS),
    logFormat: parseEnum('--log-format', value('log-format'), LOG_FORMATS),
    bridge: parseIfName('--bridge', value('bridge')),
    bootTimeout: parseNumber('--boot-timeout', value('boot-timeout'), 0.01, 3600),
    maxBooting: parseInteger('--max-booting', value('max-booting'), 1, 10_000),
    summonRate: parseInteger('--summon-rate', value('summon-rate'), 0, 1_000_000),
    idleTimeout: parseNumber('--idle-timeout', flag('idle-timeout') ?? String(2 * ttl), 0.01, 31 * 86400),
    sweepInterval: parseNumber('--sweep-interval', value('sweep-interval'), 0.01, 3600),
    workers: parseInteger('--workers', value('workers'), 1, 64),
    services: [],
  };
  if (backendUri !== undefined) config.backendUri = backendUri;
  if (synjitsu !== undefined) config.synjitsu = parseIfName('--synjitsu', synjitsu);
  if (metrics !== undefined) config.metrics = parseHostPort('--metrics', metrics);
  const logFile = flag('log-file');
  if (logFile !== undefined) config.logFile = parseLogFile(logFile);
  if (hostCidr !== undefined) {
    const cidr = parseCidr('--host-cidr', hostCidr);
    config.hostCidr = `${cidr.ip}/${cidr.prefixLength}`;
  }

  config.services = raw.services.map((pairs) => validateService(pairs, config, ctx.backend ?? getBackend));
  checkUnique(config.services);
  if (allowForward === undefined) config.allowForward = defaultAllowForward(config);
  // park/handshake need the packet path; default it to the daemon's own bridge rather than fail.
  if (config.synjitsu === undefined && config.services.some((s) => maskStrategy(s.mask).onPacketPath)) {
    config.synjitsu = config.bridge;
  }
  return config;
}

/** `ADDRESS/PREFIX`, or a bare address for one host; stored as a CIDR. */
function parseAllowedClient(raw: string): string {
  if (!raw.includes('/')) {
    const { ip, family } = parseIp('--allow-forward', raw);
    return `${ip}/${family === 4 ? 32 : 128}`;
  }
  const cidr = parseCidr('--allow-forward', raw);
  return `${cidr.ip}/${cidr.prefixLength}`;
}

/**
 * Who may use us as a resolver when --allow-forward is not given: this host (loopback) and the
 * services we run (each one's /24 or /64, or the --host-cidr subnet they all sit in).
 */
function defaultAllowForward(config: Config): string[] {
  const subnets = config.hostCidr !== undefined ? [config.hostCidr] : config.services.map((s) => {
    const net = defaultGateway(s.ip);
    return `${net.gateway}/${net.prefixLength}`;
  });
  return [...new Set(['127.0.0.0/8', '::1/128', ...subnets])];
}

/** A file path, made absolute (SIGUSR1 reopens it by that path). Whether it can be opened is known only by opening it: the CLI does, at start. */
function parseLogFile(raw: string): string {
  if (raw.trim() === '' || raw.endsWith('/')) throw new ConfigError('--log-file', `"${raw}" is not a file path: give a file, e.g. --log-file /var/log/jitsu.log`);
  return resolve(raw);
}

/** QEMU names files under it in option values (mem-path=...): no commas, and absolute. */
function parseSnapshotDir(raw: string): string {
  if (!raw.startsWith('/') || raw.includes(',') || raw.includes('\0')) throw new ConfigError('--snapshot-dir', `"${raw}" must be an absolute directory path without commas, e.g. /dev/shm/jitsu-snapshots`);
  return resolve(raw);
}

function parseReady(value: string): ReadyProbe {
  const match = /^tcp:(\d+)$/.exec(value);
  if (!match) throw new ConfigError('ready', `"${value}" is not a probe: use tcp:PORT (e.g. ready=tcp:80)`);
  return { kind: 'tcp', port: parseInteger('ready', match[1]!, 1, 65535) };
}

const COMMON_SINGLE = new Set(['ip', 'name', 'backend', 'response_delay', 'mask', 'ready', 'stop', 'use_synjitsu', ...SUPERVISION_KEYS.map((k) => k.key)]);

function validateService(pairs: readonly KeyValue[], config: Config, lookupBackend: (name: BackendName) => Backend): ServiceConfig {
  const dns: string[] = [];
  const common = new Map<string, string>();
  const backendPairs: KeyValue[] = [];
  for (const [key, value] of pairs) {
    if (key === 'dns') dns.push(parseDnsName('dns', value));
    else if (COMMON_SINGLE.has(key)) {
      if (common.has(key)) throw new ConfigError(key, `given twice in one service; give it once`);
      common.set(key, value);
    } else if (key === 'wait_for_key') {
      throw new ConfigError(key, 'XenStore keys are not supported: use ready=tcp:PORT to wait for the service');
    } else backendPairs.push([key, value]);
  }
  const where = common.get('name') ?? dns[0] ?? '(unnamed service)';
  if (dns.length === 0) throw new ConfigError('dns', `service ${where} has no dns= name: add dns=NAME`);
  const ipText = common.get('ip');
  if (ipText === undefined) throw new ConfigError('ip', `service ${where} has no ip=: add ip=ADDRESS`);
  const { ip, family } = parseIp('ip', ipText);
  const name = common.get('name') ?? dns[0]!;
  if (!SERVICE_NAME.test(name)) throw new ConfigError('name', `"${name}" is not a valid service name (letters, digits, _ . -, at most 63)`);

  const backendName = common.get('backend') ?? config.backend;
  if (!isBackendName(backendName)) throw new ConfigError('backend', `"${backendName}" is not a backend: use ${BACKEND_NAMES.join('|')}`);
  const backend = lookupBackend(backendName);
  const options = validateBackendOptions(backend, backendPairs, name);

  const maskText = common.get('mask');
  const useSynjitsu = common.get('use_synjitsu');
  let mask: MaskMode;
  if (maskText !== undefined) mask = parseEnum('mask', maskText, MASK_MODES);
  else if (useSynjitsu !== undefined && parseBoolean('use_synjitsu', useSynjitsu)) mask = handshake.name;
  else mask = defaultMask(backend, options, name);
  const supported = supportedMasks(backend.capabilities.masking);
  if (!supported.includes(mask)) {
    throw new ConfigError('mask', `mask=${mask} does not work with the ${backendName} backend: use one of ${supported.join('|')}`);
  }
  const impossible = maskStrategy(mask).check?.(options, name);
  if (impossible !== undefined) throw new ConfigError('mask', impossible);

  const service: ServiceConfig = {
    name,
    dns,
    ip,
    family,
    backend: backendName,
    responseDelay: common.has('response_delay') ? parseNumber('response_delay', common.get('response_delay')!, 0, 60) : config.responseDelay,
    mask,
    options,
    policy: parsePolicy(new Map([...common].filter(([key]) => isSupervisionKey(key)))),
  };
  const ready = common.get('ready');
  if (ready !== undefined) service.ready = parseReady(ready);
  const stopText = common.get('stop');
  const stopMode = stopText !== undefined ? parseEnum('stop', stopText, STOP_MODES) : config.stopMode;
  if (!backend.capabilities.stopModes.includes(stopMode)) {
    const key = stopText !== undefined ? 'stop' : '--mode';
    throw new ConfigError(key, `service ${name}: the ${backendName} backend cannot stop with mode ${stopMode} (it can: ${backend.capabilities.stopModes.join('|')}); give the service stop=MODE`);
  }
  if (stopText !== undefined) service.stopMode = stopMode;
  return service;
}

/** The backend's preferred mask where the service's keys allow it (activate needs port=), else none. */
function defaultMask(backend: Backend, options: Record<string, string[]>, service: string): MaskMode {
  const preferred = maskStrategy(backend.capabilities.defaultMask);
  return preferred.check?.(options, service) === undefined ? preferred.name : 'none';
}

const COMMON_KEYS = ['dns', ...COMMON_SINGLE].join(', ');

function validateBackendOptions(backend: Backend, pairs: readonly KeyValue[], service: string): Record<string, string[]> {
  const options: Record<string, string[]> = {};
  for (const [key, value] of pairs) {
    const spec = backend.options.find((o) => o.key === key);
    if (!spec) {
      const known = backend.options.map((o) => o.key).join(', ') || '(none)';
      throw new ConfigError(key, `unknown key for the ${backend.name} backend (service ${service}); its keys: ${known}; common keys: ${COMMON_KEYS}`);
    }
    const problem = spec.validate?.(value);
    if (problem !== undefined) throw new ConfigError(key, problem);
    const values = (options[key] ??= []);
    if (values.length > 0 && !spec.repeatable) throw new ConfigError(key, `given twice in service ${service}; give it once`);
    values.push(value);
  }
  for (const spec of backend.options) {
    if (spec.required && !options[spec.key]) {
      throw new ConfigError(spec.key, `the ${backend.name} backend needs ${spec.key}= (service ${service})${spec.example ? `, e.g. ${spec.key}=${spec.example}` : ''}`);
    }
    const conflict = options[spec.key] ? spec.conflicts?.(options) : undefined;
    if (conflict !== undefined) throw new ConfigError(spec.key, `service ${service}: ${conflict}`);
  }
  return options;
}

function checkUnique(services: readonly ServiceConfig[]): void {
  const names = new Set<string>();
  const dns = new Map<string, string>();
  const ips = new Map<string, string>();
  for (const s of services) {
    if (names.has(s.name)) throw new ConfigError('name', `two services are named "${s.name}": give each a unique name=`);
    names.add(s.name);
    for (const d of s.dns) {
      const other = dns.get(d);
      if (other !== undefined) throw new ConfigError('dns', `"${d}" is claimed by services ${other} and ${s.name}: a name maps to one service`);
      dns.set(d, s.name);
    }
    const otherIp = ips.get(s.ip);
    if (otherIp !== undefined) throw new ConfigError('ip', `${s.ip} is used by services ${otherIp} and ${s.name}: give each its own ip=`);
    ips.set(s.ip, s.name);
  }
}

