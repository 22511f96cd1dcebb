import { BACKEND_NAMES, MASK_MODES, STOP_MODES } from '../backends/backend.js';
import { LOG_FORMATS, LOG_LEVELS } from '../observe/log.js';
import { RELAY_MODES } from '../synjitsu/masker.js';
import { SUPERVISION_KEYS } from './supervision-keys.js';

/**
 * The one table of daemon options. The CLI parser, the config-file loader, validation and `--help`
 * all read it, so a flag cannot exist in one place and be missing in another. Config files use the
 * long names as keys (`forwarder-port: 5300`).
 */
export interface FlagSpec {
  long: string;
  short?: string;
  /** Placeholder for the value in --help; absent for switches. */
  metavar?: string;
  help: string;
  /** The value used when the flag is absent, as text: validation parses it like a given one; --help shows it. */
  default?: string;
  /** For a default that is not one value (computed, or a description): what --help shows instead. */
  defaultText?: string;
  repeatable?: boolean;
  /** Only meaningful on the command line (not a config-file key). */
  cliOnly?: boolean;
}

export const FLAGS: readonly FlagSpec[] = [
  { long: 'bind', short: 'b', metavar: 'ADDR', repeatable: true, default: '127.0.0.1', help: 'address to serve DNS on (repeatable or comma-separated; IPv4 and IPv6)' },
  { long: 'port', short: 'l', metavar: 'PORT', default: '53', help: 'DNS port, UDP and TCP' },
  { long: 'forwarder', short: 'f', metavar: 'ADDR', repeatable: true, defaultText: 'nameservers of /etc/resolv.conf', help: 'upstream resolver for names we do not own; 0.0.0.0 disables forwarding' },
  { long: 'forwarder-port', short: 'p', metavar: 'PORT', default: '53', help: 'upstream resolver port' },
  { long: 'allow-forward', metavar: 'CIDR', repeatable: true, defaultText: "127.0.0.0/8, ::1 and the services' subnets", help: 'clients whose queries for names we do not own are forwarded (repeatable or comma-separated; replaces the default); others get REFUSED: no open resolver' },
  { long: 'rrl-rate', metavar: 'N', default: '200', help: 'our UDP answers per second per client /24 (IPv6 /56) before rate limiting; loopback is exempt; 0 = off' },
  { long: 'rrl-slip', metavar: 'N', default: '2', help: 'every Nth rate-limited answer is sent truncated (TC=1, the client retries over TCP), the others dropped; 0 = drop all' },
  { long: 'backend', short: 'x', metavar: 'NAME', default: 'process', help: `default backend: ${BACKEND_NAMES.join('|')} (a service may name its own with backend=)` },
  { long: 'backend-uri', short: 'c', metavar: 'URI', help: 'backend connection URI (libvirt: default qemu:///system)' },
  { long: 'delay', short: 'd', metavar: 'SECONDS', default: '0.1', help: 'a cold-start answer leaves no earlier than this after the boot began (services override with response_delay=)' },
  { long: 'ttl', short: 't', metavar: 'SECONDS', default: '60', help: 'TTL of our answers; a service idle for 2×TTL is stopped' },
  { long: 'mode', short: 'm', metavar: 'MODE', default: 'destroy', help: `how idle services stop: ${STOP_MODES.join('|')}` },
  { long: 'synjitsu', metavar: 'IFACE', help: 'run Synjitsu boot masking (park/handshake, summon-on-SYN) on this bridge' },
  { long: 'synjitsu-relay', metavar: 'MODE', default: 'kernel', help: `${RELAY_MODES.join('|')}: who translates a connection handed over after a masked boot for the rest of its life (kernel: a tc program on the guest's link, Linux >= 6.6; falls back to daemon, logged)` },
  { long: 'state', metavar: 'DIR', default: '/var/lib/jitsu', help: 'state directory: a restarted daemon adopts services still running' },
  { long: 'snapshot-dir', metavar: 'DIR', default: '/dev/shm/jitsu-snapshots', help: 'where qemu services with snapshot=template keep their templates (RAM file + device state; tmpfs: restores map it copy-on-write) and hibernated guests' },
  { long: 'snapshot-max-mb', metavar: 'MIB', default: '4096', help: 'bound on the snapshot dir: a template or hibernation that would not fit is not taken (the service boots cold; logged)' },
  { long: 'persistdb', metavar: 'DIR', help: 'alias of --state (original Jitsu flag)' },
  { long: 'metrics', metavar: 'HOST:PORT', help: 'serve /metrics (Prometheus text) and /status (JSON) over HTTP' },
  { long: 'log-level', metavar: 'LEVEL', default: 'info', help: LOG_LEVELS.join('|') },
  { long: 'log-format', metavar: 'FORMAT', default: 'logfmt', help: `${LOG_FORMATS.join('|')} (one JSON object per line); under systemd lines carry no timestamp and a <N> priority for the journal` },
  { long: 'log-file', metavar: 'PATH', defaultText: 'stderr', help: 'append logs to this file; SIGUSR1 reopens it at PATH (log rotation)' },
  { long: 'bridge', metavar: 'NAME', default: 'jitsu0', help: 'bridge the services hang off (created if missing, removed on exit if we made it)' },
  { long: 'host-cidr', metavar: 'CIDR', help: "host address on the bridge (default: the .1 of each service's /24, ::1 of its /64)" },
  { long: 'max-booting', metavar: 'N', default: '16', help: 'boots under way at once, daemon-wide; a query that would start one more gets SERVFAIL at once' },
  { long: 'summon-rate', metavar: 'N', default: '20', help: 'new boots per second one client /24 (IPv6 /56) may start (burst N); beyond it SERVFAIL at once; 0 = no limit' },
  { long: 'boot-timeout', metavar: 'SECONDS', default: '30', help: 'a boot not ready by then fails: SERVFAIL, logged with its cause (also bounds a hibernate stop)' },
  { long: 'idle-timeout', metavar: 'SECONDS', defaultText: '2×TTL', help: 'stop a ready service after this long without a query' },
  { long: 'sweep-interval', metavar: 'SECONDS', default: '5', help: 'how often idle services are looked for' },
  { long: 'workers', metavar: 'N', default: '2', help: 'worker threads running backend calls' },
  { long: 'config', metavar: 'FILE', cliOnly: true, help: 'YAML or JSON file with the same keys (long flag names, plus services:)' },
  { long: 'demo', cliOnly: true, help: 'run the embedded demo: demo.jitsu.test, a tiny HTTP service, DNS on 127.0.0.1:5353' },
  { long: 'help', short: 'h', cliOnly: true, help: 'show this help' },
  { long: 'version', cliOnly: true, help: 'print the version' },
];

/** Keys every service takes, whatever its backend. */
export const SERVICE_KEYS: readonly { key: string; help: string; repeatable?: boolean }[] = [
  { key: 'dns', repeatable: true, help: 'a name answered for this service (repeatable; at least one)' },
  { key: 'ip', help: 'IPv4 or IPv6 address of the service (required)' },
  { key: 'name', help: 'service name (default: the first dns name)' },
  { key: 'backend', help: 'backend for this service (default: -x)' },
  { key: 'response_delay', help: 'seconds; overrides -d for this service' },
  { key: 'mask', help: `boot masking: ${MASK_MODES.join('|')} (default: the backend's)` },
  { key: 'ready', help: 'readiness probe tcp:PORT (default: the backend\'s own signal)' },
  { key: 'stop', help: `how this service stops when idle: ${STOP_MODES.join('|')}, as its backend allows (default: -m)` },
  { key: 'use_synjitsu', help: 'original Jitsu key: true = mask=handshake' },
  ...SUPERVISION_KEYS.map(({ key, help }) => ({ key, help })),
];

export function flagByName(name: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.long === name || f.short === name);
}
