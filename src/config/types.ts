import type { BackendName, MaskMode, ReadyProbe, StopMode } from '../backends/backend.js';
import type { LogFormat, LogLevel } from '../observe/log.js';
import type { SupervisionPolicy } from '../supervise/policy.js';
import type { RelayMode } from '../synjitsu/masker.js';

export interface ServiceConfig {
  /** Unique service name (`name=`; defaults to the first `dns` name). */
  name: string;
  /** Exact names answered for this service: lowercase, no trailing dot. */
  dns: string[];
  ip: string;
  family: 4 | 6;
  backend: BackendName;
  /** Seconds: a cold-start answer leaves no earlier than this after the boot began. */
  responseDelay: number;
  mask: MaskMode;
  /** How this service stops when idle (`stop=`; default -m); one of its backend's stop modes. */
  stopMode?: StopMode;
  ready?: ReadyProbe;
  /** Restart policy, start limit and idle rule (restart=, start_limit_*, cooldown=, idle=). */
  policy: SupervisionPolicy;
  /** Backend keys, repeatable keys in order. */
  options: Record<string, string[]>;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface Config {
  /** DNS listen addresses (-b). */
  bind: string[];
  /** DNS port (-l). */
  port: number;
  /** Upstream resolvers; empty = forwarding disabled (-f 0.0.0.0). */
  forwarders: string[];
  forwarderPort: number;
  /** Client prefixes (CIDR) whose queries for names we do not own may be forwarded (--allow-forward). */
  allowForward: string[];
  /** Our UDP answers per second per client prefix; 0 = no rate limiting (--rrl-rate). */
  rrlRate: number;
  /** Every rrlSlip-th limited answer goes out truncated, the rest are dropped; 0 = drop all (--rrl-slip). */
  rrlSlip: number;
  backend: BackendName;
  backendUri?: string;
  responseDelay: number;
  ttl: number;
  stopMode: StopMode;
  /** Bridge to run Synjitsu on; undefined = masking of VMs off (activate still works). */
  synjitsu?: string;
  /** Who relays handed-over connections (--synjitsu-relay). */
  synjitsuRelay: RelayMode;
  stateDir: string;
  /** Memory snapshots of qemu services (--snapshot-dir, --snapshot-max-mb). */
  snapshotDir: string;
  snapshotMaxMiB: number;
  metrics?: HostPort;
  logLevel: LogLevel;
  /** Log line format (--log-format). */
  logFormat: LogFormat;
  /** Absolute path logs are appended to (--log-file); undefined = stderr. */
  logFile?: string;
  bridge: string;
  /** Explicit host address on the bridge (CIDR), instead of the .1 of each service's /24. */
  hostCidr?: string;
  bootTimeout: number;
  /** Boots under way at once, daemon-wide (--max-booting). */
  maxBooting: number;
  /** New boots per second per client prefix; 0 = no per-client limit (--summon-rate). */
  summonRate: number;
  /** Seconds without a query before a ready service is stopped (default 2×TTL). */
  idleTimeout: number;
  sweepInterval: number;
  /** Worker threads for backend calls. */
  workers: number;
  services: ServiceConfig[];
}
