import type { Config, HostPort } from './types.js';

/**
 * What a reload (SIGHUP, `jitsu reload`) may change while the daemon runs. These options are bound
 * to something made once at start-up — listening sockets, the bridge and the host addresses on it,
 * the state dir and its control socket, the worker threads, Synjitsu's packet sockets, the log
 * destination, the boot gate's counters — so a reload keeps their running value and says so.
 * Everything else takes effect: upstreams, --allow-forward, RRL, TTL, delay, stop mode, timeouts,
 * log level, backend defaults, and the services themselves.
 */
export const RESTART_ONLY_OPTIONS = [
  ['bind', 'bind'],
  ['port', 'port'],
  ['bridge', 'bridge'],
  ['host-cidr', 'hostCidr'],
  ['state', 'stateDir'],
  ['workers', 'workers'],
  ['synjitsu', 'synjitsu'],
  ['synjitsu-relay', 'synjitsuRelay'],
  ['metrics', 'metrics'],
  ['log-file', 'logFile'],
  ['log-format', 'logFormat'],
  ['max-booting', 'maxBooting'],
  ['summon-rate', 'summonRate'],
] as const satisfies readonly (readonly [string, keyof Config])[];

/** Options a reload changes live, by flag name, for the log line that says what changed. */
const LIVE_OPTIONS = [
  ['forwarder', 'forwarders'],
  ['forwarder-port', 'forwarderPort'],
  ['allow-forward', 'allowForward'],
  ['rrl-rate', 'rrlRate'],
  ['rrl-slip', 'rrlSlip'],
  ['backend', 'backend'],
  ['backend-uri', 'backendUri'],
  ['delay', 'responseDelay'],
  ['ttl', 'ttl'],
  ['mode', 'stopMode'],
  ['snapshot-dir', 'snapshotDir'],
  ['snapshot-max-mb', 'snapshotMaxMiB'],
  ['log-level', 'logLevel'],
  ['boot-timeout', 'bootTimeout'],
  ['idle-timeout', 'idleTimeout'],
  ['sweep-interval', 'sweepInterval'],
] as const satisfies readonly (readonly [string, keyof Config])[];

export interface KeptOption {
  /** The flag, e.g. `--port`. */
  option: string;
  running: string;
  wanted: string;
}

export interface ReloadedOptions {
  /** The configuration to run: the new one, with every restart-only option at its running value. */
  effective: Config;
  /** Restart-only options the new file changes: not applied. */
  kept: KeptOption[];
  /** Live options the new file changes (flag names): applied. */
  changed: string[];
}

type OptionValue = Config[keyof Config];

function show(value: OptionValue): string {
  if (value === undefined) return 'off';
  if (Array.isArray(value)) return value.join(',') || '(none)';
  if (typeof value === 'object') return `${(value as HostPort).host}:${(value as HostPort).port}`;
  return String(value);
}

/** Splits a reload's new configuration into what applies now and what waits for a restart. */
export function reloadOptions(running: Config, next: Config): ReloadedOptions {
  const effective: Config = { ...next };
  const kept: KeptOption[] = [];
  for (const [flag, key] of RESTART_ONLY_OPTIONS) {
    if (show(running[key]) === show(next[key])) continue;
    kept.push({ option: `--${flag}`, running: show(running[key]), wanted: show(next[key]) });
    const target = effective as unknown as Record<string, OptionValue>;
    if (running[key] === undefined) delete target[key];
    else target[key] = running[key];
  }
  const changed = LIVE_OPTIONS.filter(([, key]) => show(running[key]) !== show(next[key])).map(([flag]) => flag);
  return { effective, kept, changed };
}
