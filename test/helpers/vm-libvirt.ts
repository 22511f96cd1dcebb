/**
 * libvirt test rig (jt4 area): starts the real libvirtd through scripts/start-libvirtd.sh and
 * writes TCG `microvm` domain XML that boots the project's guest image on a test bridge.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hostCpuKhz } from '../../src/backends/qemu/argv.js';

const run = promisify(execFile);
const repo = new URL('../../', import.meta.url).pathname;
export const URI = 'qemu:///system';

/** Start libvirtd if needed; resolves true when this call started it (so the caller stops it). */
export async function startLibvirtd(): Promise<boolean> {
  const { stdout } = await run(join(repo, 'scripts/start-libvirtd.sh'), [], { timeout: 60_000 });
  return stdout.trim() === 'started';
}

export async function stopLibvirtd(): Promise<void> {
  await run(join(repo, 'scripts/start-libvirtd.sh'), ['--stop'], { timeout: 60_000 });
}

export async function virshRun(args: string[]): Promise<string> {
  const { stdout } = await run('virsh', ['-q', '-c', URI, ...args], { timeout: 60_000 });
  return stdout;
}

export interface DomainXmlOptions {
  name: string;
  kernel: string;
  initrd: string;
  bridge: string;
  mac: string;
  ip: string;
  gateway: string;
  /** Host link libvirt names the tap (keeps the jt4 prefix). */
  tap: string;
  consolePath: string;
  /** 'qemu' = TCG; 'kvm' needs a working /dev/kvm. */
  type?: 'qemu' | 'kvm';
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;');

/** A microvm domain: no PCI, so libvirt must be told to add no USB controller or balloon. */
export function microvmDomainXml(o: DomainXmlOptions): string {
  const khz = hostCpuKhz();
  const cmdline = ['console=ttyS0', 'reboot=t', 'panic=-1', ...(khz && o.type !== 'kvm' ? [`tsc_early_khz=${khz}`] : []),
    `jitsu.ip=${o.ip}/24`, `jitsu.gw=${o.gateway}`, `jitsu.name=${o.name}`].join(' ');
  return `<domain type='${o.type ?? 'qemu'}'>
  <name>${esc(o.name)}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>${esc(o.kernel)}</kernel>
    <initrd>${esc(o.initrd)}</initrd>
    <cmdline>${esc(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <interface type='bridge'>
      <source bridge='${esc(o.bridge)}'/>
      <mac address='${esc(o.mac)}'/>
      <model type='virtio'/>
      <target dev='${esc(o.tap)}'/>
      <address type='virtio-mmio'/>
    </interface>
    <serial type='file'><source path='${esc(o.consolePath)}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

export async function defineDomain(xmlPath: string, xml: string, transient = false): Promise<void> {
  writeFileSync(xmlPath, xml);
  await virshRun([transient ? 'create' : 'define', xmlPath]);
}

/** Remove a test domain whatever its state; never throws. */
export async function removeDomain(name: string): Promise<void> {
  await run('virsh', ['-q', '-c', URI, 'destroy', name], { timeout: 30_000 }).catch(() => undefined);
  await run('virsh', ['-q', '-c', URI, 'undefine', name], { timeout: 30_000 }).catch(() => undefined);
}
