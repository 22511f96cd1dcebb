/**
 * The qemu backend's service keys: their specs (for --help and config validation) and the parse of
 * a service's options into a typed launch config. Paths are checked for existence at start, not
 * here: a config may name a kernel that a build step has yet to produce.
 */
import { join } from 'node:path';
import type { OptionSpec, ServiceSpec } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { isValidIfName } from '../../network/names.js';
import { DEFAULT_SERVICE_USER, ROOT_USER } from '../common/identity.js';

export type AccelChoice = 'auto' | 'kvm' | 'tcg';

export interface QemuConfig {
  kernel: string;
  initrd?: string;
  /** Extra kernel arguments, appended after the ones Jitsu sets. */
  cmdline: string;
  memoryMiB: number;
  vcpus: number;
  mac: string;
  bridge: string;
  tap: string;
  accel: AccelChoice;
  acpi: boolean;
  shutdownTimeoutMs: number;
  /** The QEMU binary (key `qemu`), default qemu-system-x86_64 from PATH. */
  binary: string;
  /** User QEMU switches to once the machine is set up (-runas); `root`: stays root. */
  user: string;
  /** -sandbox (seccomp): on by default. */
  sandbox: boolean;
  /** Directory QEMU chroots into once the machine is set up. */
  chroot?: string;
  /** `template`: summons restore a copy of a memory snapshot taken after the first boot (snapshot.ts). */
  snapshot: 'off' | 'template';
  /**
   * snapshot=template, while the service is stopped: `on` keeps the next copy's QEMU started and
   * waiting for its state; `warm` keeps the next copy restored, reseeded and warmed, tap down.
   */
  prespawn: PrespawnMode;
}

export const PRESPAWN_MODES = ['off', 'on', 'warm'] as const;
export type PrespawnMode = (typeof PRESPAWN_MODES)[number];

/** Where build-guest.sh leaves the project's guest image. */
export function guestImageDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['JITSU_CACHE'] || '/var/cache/jitsu', 'guest');
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function intIn(min: number, max: number, what: string): (v: string) => string | undefined {
  return (v) => (/^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? undefined : `${what} must be an integer from ${min} to ${max}, got "${v}"`);
}

const validMemory = intIn(16, 1024 * 1024, 'memory (MiB)');
const validVcpus = intIn(1, 64, 'vcpus');
const validShutdown = intIn(0, 600, 'shutdown_timeout (seconds)');
const validMac = (v: string): string | undefined =>
  MAC_RE.test(v) && (parseInt(v.slice(0, 2), 16) & 1) === 0 ? undefined : `mac must be a unicast MAC like 02:00:00:00:00:01, got "${v}"`;
const validIf = (what: string) => (v: string): string | undefined =>
  isValidIfName(v) ? undefined : `${what} must be an interface name of 1-15 characters without spaces, / or :, got "${v}"`;
const validAccel = (v: string): string | undefined => (v === 'auto' || v === 'kvm' || v === 'tcg' ? undefined : `accel must be auto, kvm or tcg, got "${v}"`);
const validOnOff = (key: string) => (v: string): string | undefined => (v === 'on' || v === 'off' ? undefined : `${key} must be on or off, got "${v}"`);
const validPath = (what: string) => (v: string): string | undefined => (v.length > 0 && !v.includes('\0') ? undefined : `${what} must be a file path`);
const validUser = (v: string): string | undefined => (/^([a-z_][a-z0-9_.-]{0,31}|\d{1,10})$/i.test(v) ? undefined : `user must be a user name or uid, got "${v}"`);
const validSnapshot = (v: string): string | undefined => (v === 'off' || v === 'template' ? undefined : `snapshot must be off or template, got "${v}"`);
const validChroot = (v: string): string | undefined => (v.startsWith('/') && !v.includes(',') ? undefined : `chroot must be an absolute directory path without commas, got "${v}"`);
// Commas and quotes would be split or mangled by the service-argument syntax before they got here;
// what remains must not smuggle a newline into the kernel command line.
const validCmdline = (v: string): string | undefined => (/[\n\r\0]/.test(v) ? 'cmdline must be one line' : undefined);

export const qemuOptions: readonly OptionSpec[] = [
  { key: 'kernel', description: 'uncompressed guest kernel (ELF vmlinux); default: the guest image built by scripts/build-guest.sh (vmlinux-stock)', example: '/var/cache/jitsu/guest/vmlinux-stock', validate: validPath('kernel') },
  { key: 'initrd', description: 'initramfs; default: the guest image\'s initramfs.cpio.gz when `kernel` is not given', example: '/var/cache/jitsu/guest/initramfs.cpio.gz', validate: validPath('initrd') },
  { key: 'cmdline', description: 'extra kernel arguments, appended after console/panic/tsc and jitsu.ip/jitsu.gw/jitsu.name', example: 'loglevel=4', validate: validCmdline },
  { key: 'memory', description: 'guest memory in MiB (default 128)', example: '128', validate: validMemory },
  { key: 'vcpus', description: 'virtual CPUs (default 1)', example: '1', validate: validVcpus },
  { key: 'mac', description: 'guest MAC (default: the service\'s stable MAC)', example: '02:00:00:00:00:01', validate: validMac },
  { key: 'nic', description: 'bridge the guest\'s tap joins (default: the daemon\'s bridge)', example: 'jitsu0', validate: validIf('nic') },
  { key: 'tap', description: 'host tap name (default: derived from the service name, <= 15 chars)', example: 'web-t', validate: validIf('tap') },
  { key: 'accel', description: 'auto (probe KVM once per host with a test boot, else TCG), kvm or tcg (default auto)', example: 'auto', validate: validAccel },
  { key: 'acpi', description: 'microvm ACPI: on (default; Debian\'s stock kernel needs it to find its NIC, and it enables clean shutdown) or off (tiny kernel: faster boot)', example: 'on', validate: validOnOff('acpi') },
  { key: 'shutdown_timeout', description: 'seconds stop mode shutdown waits for the guest to power off before quitting QEMU (default 10)', example: '10', validate: validShutdown },
  { key: 'qemu', description: 'QEMU binary (default qemu-system-x86_64)', example: 'qemu-system-x86_64', validate: validPath('qemu') },
  {
    key: 'user',
    description: `user QEMU runs as once its tap, QMP socket and files are open (-runas; default ${DEFAULT_SERVICE_USER}, created by scripts/setup.sh); ${ROOT_USER}: QEMU stays root`,
    example: DEFAULT_SERVICE_USER,
    validate: validUser,
  },
  { key: 'sandbox', description: 'seccomp filter (-sandbox on,obsolete=deny,spawn=deny,resourcecontrol=deny, elevateprivileges=deny when QEMU stays root): on (default) or off', example: 'on', validate: validOnOff('sandbox') },
  {
    key: 'snapshot',
    description: 'template: the first boot is cold, then the guest is saved (RAM file under --snapshot-dir + device state) and every summon restores a fresh copy (~0.4 s under TCG here instead of a 10 s boot; the guest needs the jitsu agent for clone safety, as the project\'s guest image has); off (default)',
    example: 'template',
    validate: validSnapshot,
  },
  {
    key: 'prespawn',
    description:
      'needs snapshot=template; while the service is stopped: on = keep its next copy\'s QEMU started and waiting for the template\'s state (-incoming defer, its tap down), so a summon skips QEMU\'s start-up (it holds QEMU\'s own memory, not the guest\'s); warm = keep the next copy restored, reseeded by its agent and warmed by one request to itself, its tap down, so a summon only brings the tap up (it holds the copy\'s memory and an idle guest); off (default)',
    example: 'warm',
    validate: (v) => ((PRESPAWN_MODES as readonly string[]).includes(v) ? undefined : `prespawn must be ${PRESPAWN_MODES.join(', ')}, got "${v}"`),
    conflicts: (o) => {
      const mode = o['prespawn']?.[0];
      return mode !== undefined && mode !== 'off' && o['snapshot']?.[0] !== 'template' ? `prespawn=${mode} works from a template: add snapshot=template, or drop prespawn` : undefined;
    },
  },
  { key: 'chroot', description: 'directory QEMU chroots into once the machine is set up (-chroot; an empty directory will do)', example: '/var/empty', validate: validChroot },
];

const KNOWN = new Set(qemuOptions.map((o) => o.key));

/** The production tap name: `<service>-t`, or a shortened name with a hash when it would not fit. */
export function defaultTapName(service: string, hash: (s: string) => string): string {
  const clean = service.replace(/[^A-Za-z0-9_-]/g, '-');
  if (clean === service && clean.length > 0 && clean.length <= 13) return `${clean}-t`;
  return `${clean.slice(0, 9)}-t${hash(service).slice(0, 4)}`;
}

/**
 * Validate and type a service's qemu options. Unknown keys and bad values fail with
 * CONFIG_INVALID naming the key and the fix; nothing is silently ignored.
 */
export function parseQemuOptions(spec: ServiceSpec, hash: (s: string) => string, env: NodeJS.ProcessEnv = process.env): QemuConfig {
  const opts = spec.options;
  for (const key of Object.keys(opts)) {
    if (!KNOWN.has(key)) {
      throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: unknown qemu key "${key}" (known: ${[...KNOWN].join(', ')})`, { service: spec.service, key });
    }
  }
  const one = (key: string): string | undefined => {
    const values = opts[key];
    if (values === undefined || values.length === 0) return undefined;
    if (values.length > 1) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: qemu key "${key}" given ${values.length} times; give it once`, { service: spec.service, key });
    const v = values[0]!;
    const problem = qemuOptions.find((o) => o.key === key)?.validate?.(v);
    if (problem) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: ${problem}`, { service: spec.service, key, value: v });
    return v;
  };
  const kernel = one('kernel');
  const image = guestImageDir(env);
  const initrd = one('initrd') ?? (kernel === undefined ? join(image, 'initramfs.cpio.gz') : undefined);
  const mac = (one('mac') ?? spec.network.mac).toLowerCase();
  const macProblem = validMac(mac);
  if (macProblem) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: ${macProblem}`, { service: spec.service, key: 'mac' });
  const config: QemuConfig = {
    kernel: kernel ?? join(image, 'vmlinux-stock'),
    ...(initrd !== undefined ? { initrd } : {}),
    cmdline: one('cmdline') ?? '',
    memoryMiB: Number(one('memory') ?? 128),
    vcpus: Number(one('vcpus') ?? 1),
    mac,
    bridge: one('nic') ?? spec.network.bridge,
    tap: one('tap') ?? defaultTapName(spec.service, hash),
    accel: (one('accel') ?? 'auto') as AccelChoice,
    acpi: (one('acpi') ?? 'on') === 'on',
    shutdownTimeoutMs: Number(one('shutdown_timeout') ?? 10) * 1000,
    binary: one('qemu') ?? 'qemu-system-x86_64',
    user: one('user') ?? DEFAULT_SERVICE_USER,
    sandbox: (one('sandbox') ?? 'on') === 'on',
    snapshot: (one('snapshot') ?? 'off') as 'off' | 'template',
    prespawn: (one('prespawn') ?? 'off') as PrespawnMode,
    ...(one('chroot') !== undefined ? { chroot: one('chroot')! } : {}),
  };
  // Every value is valid by now: what is left is how keys combine.
  for (const o of qemuOptions) {
    const conflict = opts[o.key] ? o.conflicts?.(opts) : undefined;
    if (conflict !== undefined) throw new JitsuError('CONFIG_INVALID', `service ${spec.service}: ${conflict}`, { service: spec.service, key: o.key });
  }
  return config;
}
