/**
 * The original Jitsu's libxl keys -> an xl domain config file (xl.cfg(5)).
 * Parsing is pure so it can be unit-tested without Xen; nothing here touches the filesystem.
 */
import type { OptionSpec, ServiceSpec } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { stableMac } from '../../network/mac.js';

export type XlGuestType = 'pv' | 'pvh';

export interface XlDisk {
  /** dom0 path of the image or block device. */
  target: string;
  /** Guest device name (xvda, hda, sda, ...). */
  vdev: string;
}

export interface XlNic {
  bridge: string;
  mac: string;
}

export interface XlDomain {
  name: string;
  type: XlGuestType;
  kernel: string;
  ramdisk?: string;
  /** As given, in KiB (the original passed it straight to libxl's max_memkb). */
  memoryKiB: number;
  /** What xl.cfg gets: `memory=` is in MiB, so KiB is rounded up to a whole MiB. */
  memoryMiB: number;
  vcpus: number;
  cmdline?: string;
  nics: XlNic[];
  disks: XlDisk[];
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const VDEV_RE = /^(xvd|hd|sd)[a-z]{1,3}[0-9]{0,2}$/;
const BRIDGE_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const DOMAIN_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** xl.cfg strings are double-quoted; rather than rely on its escaping rules we refuse the few characters that need it. */
function unquotable(value: string): string | undefined {
  if (/["\\\n\r\0]/.test(value)) return 'must not contain a double quote, backslash, newline or NUL (xl.cfg cannot carry them safely)';
  return undefined;
}

function positiveInt(value: string, max: number): number | undefined {
  if (!/^[1-9][0-9]*$/.test(value)) return undefined;
  const n = Number(value);
  return n <= max ? n : undefined;
}

/** Max KiB we accept: 1 TiB, well past any on-demand service and safely inside a double. */
const MAX_MEMORY_KIB = 1024 * 1024 * 1024;

export function parseDisk(value: string): XlDisk | string {
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) return `disk "${value}" must be PATH@DEVICE, e.g. /var/lib/jitsu/www.img@xvda`;
  const target = value.slice(0, at);
  const vdev = value.slice(at + 1);
  if (!target.startsWith('/')) return `disk path "${target}" must be absolute`;
  if (/[,=]/.test(target)) return `disk path "${target}" must not contain ',' or '=' (xl's disk spec separators)`;
  const bad = unquotable(target);
  if (bad) return `disk path ${bad}`;
  if (!VDEV_RE.test(vdev)) return `disk device "${vdev}" must be a guest device name like xvda, hda or sdb`;
  return { target, vdev };
}

export const XL_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'kernel',
    description: 'guest kernel image in dom0 (PV/PVH kernel or unikernel), as in the original Jitsu',
    required: true,
    example: '/var/lib/jitsu/www.xen',
    validate: (v) => (v.startsWith('/') ? unquotable(v) : 'kernel must be an absolute path'),
  },
  {
    key: 'memory',
    description: 'guest memory in KiB, like the original Jitsu (xl takes MiB: rounded up to a whole MiB)',
    required: true,
    example: '262144',
    validate: (v) => (positiveInt(v, MAX_MEMORY_KIB) === undefined ? `memory must be a whole number of KiB between 1 and ${MAX_MEMORY_KIB}` : undefined),
  },
  {
    key: 'cmdline',
    description: 'kernel command line passed to the guest',
    example: 'console=hvc0',
    validate: unquotable,
  },
  {
    key: 'nic',
    description: 'bridge the guest vif joins; repeat for more NICs (default: the service bridge)',
    repeatable: true,
    example: 'jitsu0',
    validate: (v) => (BRIDGE_RE.test(v) ? undefined : 'nic must be a bridge name (1-15 of A-Z a-z 0-9 _ . -)'),
  },
  {
    key: 'disk',
    description: 'disk as PATH@DEVICE (raw image or block device, read-write); repeatable',
    repeatable: true,
    example: '/var/lib/jitsu/www.img@xvda',
    validate: (v) => {
      const d = parseDisk(v);
      return typeof d === 'string' ? d : undefined;
    },
  },
  {
    key: 'vcpus',
    description: 'number of virtual CPUs (default 1)',
    example: '1',
    validate: (v) => (positiveInt(v, 512) === undefined ? 'vcpus must be a whole number between 1 and 512' : undefined),
  },
  {
    key: 'mac',
    description: 'MAC of the first NIC (default: a stable locally administered MAC derived from the service name)',
    example: '00:16:3e:00:00:01',
    validate: (v) => (MAC_RE.test(v) ? undefined : 'mac must look like 00:16:3e:12:34:56'),
  },
  {
    key: 'type',
    description: 'guest type: pv (default, as the original) or pvh',
    example: 'pv',
    validate: (v) => (v === 'pv' || v === 'pvh' ? undefined : 'type must be pv or pvh'),
  },
  {
    key: 'initrd',
    description: 'initial ramdisk in dom0 (xl.cfg ramdisk=)',
    example: '/var/lib/jitsu/www.initrd',
    validate: (v) => (v.startsWith('/') ? unquotable(v) : 'initrd must be an absolute path'),
  },
];

const KNOWN = new Set(XL_OPTIONS.map((o) => o.key));

function invalid(service: string, key: string, message: string): JitsuError {
  return new JitsuError('CONFIG_INVALID', `service ${service}: ${key}: ${message}`, { service, key });
}

/** Validates the service's keys and resolves defaults. Throws CONFIG_INVALID naming the key and the fix. */
export function parseXlDomain(spec: Pick<ServiceSpec, 'service' | 'options' | 'network'>): XlDomain {
  const { service, options } = spec;
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw invalid(service, key, `unknown xl key; use one of ${[...KNOWN].join(', ')}`);
  }
  for (const opt of XL_OPTIONS) {
    const values = options[opt.key] ?? [];
    if (opt.required && values.length === 0) throw invalid(service, opt.key, `required (e.g. ${opt.key}=${opt.example ?? '...'})`);
    if (!opt.repeatable && values.length > 1) throw invalid(service, opt.key, 'given more than once; give it once');
    for (const v of values) {
      const err = opt.validate?.(v);
      if (err) throw invalid(service, opt.key, err);
    }
  }
  if (!DOMAIN_NAME_RE.test(service)) throw invalid(service, 'name', 'an xl domain name must be 1-64 of A-Z a-z 0-9 _ . -');
  const one = (key: string): string | undefined => options[key]?.[0];
  const memoryKiB = Number(one('memory'));
  const bridges = options['nic']?.length ? options['nic'] : [spec.network.bridge];
  const firstMac = one('mac') ?? spec.network.mac;
  const nics = bridges.map((bridge, i) => ({ bridge, mac: i === 0 ? firstMac : stableMac(`${service}#nic${i}`) }));
  const disks = (options['disk'] ?? []).map((d) => parseDisk(d) as XlDisk);
  const domain: XlDomain = {
    name: service,
    type: (one('type') as XlGuestType | undefined) ?? 'pv',
    kernel: one('kernel')!,
    memoryKiB,
    memoryMiB: Math.ceil(memoryKiB / 1024),
    vcpus: Number(one('vcpus') ?? '1'),
    nics,
    disks,
  };
  const cmdline = one('cmdline');
  if (cmdline !== undefined) domain.cmdline = cmdline;
  const initrd = one('initrd');
  if (initrd !== undefined) domain.ramdisk = initrd;
  return domain;
}

const q = (s: string): string => `"${s}"`;

/** The xl.cfg text for a domain. Power-off and crash destroy the domain, so the daemon sees it as stopped. */
export function renderXlConfig(d: XlDomain): string {
  const lines = [
    `# Written by jitsu for service ${d.name}; rewritten at every start.`,
    `name = ${q(d.name)}`,
    `type = ${q(d.type)}`,
    `kernel = ${q(d.kernel)}`,
  ];
  if (d.ramdisk !== undefined) lines.push(`ramdisk = ${q(d.ramdisk)}`);
  if (d.cmdline !== undefined) lines.push(`cmdline = ${q(d.cmdline)}`);
  lines.push(
    `# memory=${d.memoryKiB} KiB requested; xl takes MiB`,
    `memory = ${d.memoryMiB}`,
    `maxmem = ${d.memoryMiB}`,
    `vcpus = ${d.vcpus}`,
    `vif = [ ${d.nics.map((n) => q(`mac=${n.mac},bridge=${n.bridge}`)).join(', ')} ]`,
  );
  // target= must come last in a disk spec: everything after it is the path.
  if (d.disks.length > 0) lines.push(`disk = [ ${d.disks.map((k) => q(`format=raw,vdev=${k.vdev},access=rw,target=${k.target}`)).join(', ')} ]`);
  lines.push('on_poweroff = "destroy"', 'on_reboot = "restart"', 'on_crash = "destroy"', '');
  return lines.join('\n');
}
