/**
 * QEMU argv and guest kernel command line: pure functions, so every flag is unit-tested and the
 * reasons for each stay next to it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceNetwork } from '../backend.js';
import type { QemuConfig } from './options.js';

export type Accel = 'kvm' | 'tcg';

/** Files QEMU reads or writes for one service, all inside the service's runDir. */
export interface RunPaths {
  qmp: string;
  pidfile: string;
  console: string;
  log: string;
  /** QEMU's exit status, written by the worker thread that reaps it: {"code":C,"signal":S}. */
  exit: string;
}

export function runPaths(runDir: string): RunPaths {
  return {
    qmp: join(runDir, 'qmp.sock'),
    pidfile: join(runDir, 'qemu.pid'),
    console: join(runDir, 'console.log'),
    log: join(runDir, 'qemu.log'),
    exit: join(runDir, 'qemu.exit'),
  };
}

let cachedKhz: number | undefined | null = null;

/**
 * The host's CPU clock in kHz, from /proc/cpuinfo. The guest needs it as tsc_early_khz: without it,
 * TSC calibration under TCG sometimes hangs the boot. Undefined when the host does not say.
 */
export function hostCpuKhz(): number | undefined {
  if (cachedKhz !== null) return cachedKhz;
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    cachedKhz = m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    cachedKhz = undefined;
  }
  return cachedKhz;
}

/**
 * The guest kernel command line: serial console, no reboot on panic (QEMU exits instead, with
 * -no-reboot, so a crashed boot fails fast), the TSC hint, then the network facts the project's
 * /init reads (other guests ignore jitsu.* arguments), then the user's extra arguments last so they
 * can override anything before them.
 */
export function buildCmdline(cfg: Pick<QemuConfig, 'cmdline'> & Partial<Pick<QemuConfig, 'snapshot'>>, service: string, net: ServiceNetwork, khz: number | undefined, accel: Accel): string {
  const parts = ['console=ttyS0', 'reboot=t', 'panic=-1'];
  // Under KVM the kernel calibrates from the real TSC; the hint is for TCG's emulated one.
  if (khz !== undefined && accel === 'tcg' && !/\btsc_early_khz=/.test(cfg.cmdline)) parts.push(`tsc_early_khz=${khz}`);
  parts.push(`jitsu.ip=${net.ip}/${net.prefixLength}`, `jitsu.gw=${net.gateway}`, `jitsu.name=${service.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
  // Snapshots: the guest starts its agent (clone safety, agent.ts) on the jitsu.agent port.
  if (cfg.snapshot === 'template') parts.push('jitsu.agent=1');
  if (cfg.cmdline.trim().length > 0) parts.push(cfg.cmdline.trim());
  return parts.join(' ');
}

/** QEMU option values are comma-separated: a literal comma is written twice. */
export function qemuOptValue(v: string): string {
  return v.replaceAll(',', ',,');
}

/**
 * How QEMU is without root. `unprivileged`: it is started as the service user (its tap is that
 * user's, its run dir too), so it never held a privilege and the sandbox denies every way to get
 * one. `runas`: it starts as root and drops to `user` itself once the machine is set up — needed
 * for `-chroot` (a root-only syscall) and for KVM (/dev/kvm is root:kvm); QEMU 7.2 installs its
 * seccomp filter before it changes uid, so elevateprivileges=deny would kill its own -runas
 * (SIGSYS in setgid) and is relaxed to allow there. `root`: user=root, QEMU keeps root.
 */
export type QemuPrivileges = { mode: 'unprivileged' } | { mode: 'runas'; user: string } | { mode: 'root' };

export function confinementArgs(cfg: Pick<QemuConfig, 'sandbox' | 'chroot'>, privileges: QemuPrivileges): string[] {
  const args: string[] = [];
  const elevate = privileges.mode === 'runas' ? 'allow' : 'deny';
  if (cfg.sandbox) args.push('-sandbox', `on,obsolete=deny,elevateprivileges=${elevate},spawn=deny,resourcecontrol=deny`);
  if (privileges.mode === 'runas') args.push('-runas', privileges.user);
  if (cfg.chroot !== undefined) args.push('-chroot', cfg.chroot);
  return args;
}

/**
 * How a snapshot service's QEMU differs from a plain one (snapshot.ts): guest RAM in a file
 * (`share`: the template being made writes it; copies map it copy-on-write), the agent's port, and
 * for copies `-incoming defer` (the state comes over QMP: x-ignore-shared cannot be set otherwise
 * in QEMU 7.2).
 */
export interface SnapshotArgs {
  memPath: string;
  share: boolean;
  agentPipe: string;
  incoming: boolean;
}

/** Full argv (without the binary) for a service VM. */
export function buildQemuArgs(cfg: QemuConfig, cmdline: string, accel: Accel, paths: RunPaths, privileges: QemuPrivileges = { mode: 'root' }, snapshot?: SnapshotArgs): string[] {
  const args = [
    // microvm: no PCI, no firmware tables beyond what the kernel needs; boots in tens of ms.
    '-M', `microvm,acpi=${cfg.acpi ? 'on' : 'off'}${snapshot ? ',memory-backend=mem' : ''}`,
    '-accel', accel,
  ];
  // KVM guests get the host CPU; TCG keeps QEMU's default model (qemu64), the fastest to emulate.
  if (accel === 'kvm') args.push('-cpu', 'host');
  args.push(
    '-m', String(cfg.memoryMiB),
    '-smp', String(cfg.vcpus),
    '-nodefaults', '-no-user-config', '-nographic',
    // A guest reboot (panic=-1, reboot=t) ends QEMU: a crashed boot is reported, not retried forever.
    '-no-reboot',
    '-kernel', cfg.kernel,
  );
  if (cfg.initrd !== undefined) args.push('-initrd', cfg.initrd);
  args.push(
    '-append', cmdline,
    '-netdev', `tap,id=net0,ifname=${cfg.tap},script=no,downscript=no`,
    '-device', `virtio-net-device,netdev=net0,mac=${cfg.mac}`,
    // append=on: the backend may truncate the file to cap it while QEMU keeps writing.
    '-chardev', `file,id=con,path=${qemuOptValue(paths.console)},append=on`,
    '-serial', 'chardev:con',
    '-qmp', `unix:${qemuOptValue(paths.qmp)},server=on,wait=off`,
    '-pidfile', paths.pidfile,
    ...confinementArgs(cfg, privileges),
  );
  if (snapshot) {
    args.push(
      '-object', `memory-backend-file,id=mem,size=${cfg.memoryMiB}M,mem-path=${qemuOptValue(snapshot.memPath)},share=${snapshot.share ? 'on' : 'off'}`,
      '-device', 'virtio-serial-device',
      '-chardev', `pipe,id=agent,path=${qemuOptValue(snapshot.agentPipe)}`,
      '-device', 'virtserialport,chardev=agent,name=jitsu.agent',
    );
    if (snapshot.incoming) args.push('-incoming', 'defer');
  }
  return args;
}

/** Argv for the KVM probe: the same guest without network, console on stdout, told to power off. */
export function buildProbeArgs(cfg: Pick<QemuConfig, 'kernel' | 'initrd' | 'acpi'>): string[] {
  const args = ['-M', `microvm,acpi=${cfg.acpi ? 'on' : 'off'}`, '-accel', 'kvm', '-cpu', 'host', '-m', '128', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-kernel', cfg.kernel];
  if (cfg.initrd !== undefined) args.push('-initrd', cfg.initrd);
  args.push('-append', 'console=ttyS0 reboot=t panic=-1 jitsu.probe=1', '-serial', 'stdio');
  return args;
}
