import { describe, expect, it } from 'vitest';
import type { ServiceNetwork } from '../backend.js';
import { buildCmdline, buildProbeArgs, buildQemuArgs, qemuOptValue, runPaths } from './argv.js';
import type { QemuConfig } from './options.js';

const net: ServiceNetwork = { bridge: 'jitsu0', family: 4, ip: '10.0.0.5', prefixLength: 24, gateway: '10.0.0.1', mac: '02:00:00:00:00:05' };
const cfg: QemuConfig = {
  kernel: '/img/vmlinux', initrd: '/img/initrd.gz', cmdline: '', memoryMiB: 128, vcpus: 1, mac: '02:00:00:00:00:05',
  bridge: 'jitsu0', tap: 'web-t', accel: 'auto', acpi: true, shutdownTimeoutMs: 10_000, binary: 'qemu-system-x86_64', user: 'jitsu-svc', sandbox: true, snapshot: 'off', prespawn: 'off',
};

function after(args: string[], flag: string): string[] {
  const out: string[] = [];
  args.forEach((a, i) => a === flag && out.push(args[i + 1]!));
  return out;
}

describe('buildCmdline', () => {
  it('sets console, panic, the TSC hint under TCG and the network facts, user args last', () => {
    const c = buildCmdline({ cmdline: 'loglevel=4 quiet' }, 'web', net, 2445406, 'tcg');
    expect(c).toBe('console=ttyS0 reboot=t panic=-1 tsc_early_khz=2445406 jitsu.ip=10.0.0.5/24 jitsu.gw=10.0.0.1 jitsu.name=web loglevel=4 quiet');
  });
  it('omits the TSC hint under KVM, when unknown, or when the user gives one', () => {
    expect(buildCmdline({ cmdline: '' }, 'web', net, 2445406, 'kvm')).not.toContain('tsc_early_khz');
    expect(buildCmdline({ cmdline: '' }, 'web', net, undefined, 'tcg')).not.toContain('tsc_early_khz');
    const user = buildCmdline({ cmdline: 'tsc_early_khz=1000' }, 'web', net, 2445406, 'tcg');
    expect(user.match(/tsc_early_khz/g)).toHaveLength(1);
  });
  it('keeps a service name with odd characters on one kernel argument', () => {
    expect(buildCmdline({ cmdline: '' }, 'my web/1', net, undefined, 'tcg')).toContain('jitsu.name=my_web_1');
  });
});

describe('buildQemuArgs', () => {
  const paths = runPaths('/run/jitsu/web');
  it('sandboxes QEMU and drops to the service user; elevateprivileges is denied only when it stays root (7.2 filters before -runas)', () => {
    const a = buildQemuArgs({ ...cfg, chroot: '/var/empty' }, 'CMD', 'tcg', paths, { mode: 'runas', user: 'jitsu-svc' });
    expect(after(a, '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny']);
    expect(after(a, '-runas')).toEqual(['jitsu-svc']);
    expect(after(a, '-chroot')).toEqual(['/var/empty']);
    const root = buildQemuArgs(cfg, 'CMD', 'tcg', paths);
    expect(after(root, '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    expect(root).not.toContain('-runas');
    expect(buildQemuArgs({ ...cfg, sandbox: false }, 'CMD', 'tcg', paths)).not.toContain('-sandbox');
    // Started as the service user: nothing to drop, every elevation denied.
    const unprivileged = buildQemuArgs(cfg, 'CMD', 'tcg', paths, { mode: 'unprivileged' });
    expect(after(unprivileged, '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    expect(unprivileged).not.toContain('-runas');
  });
  it('builds a detached-friendly microvm command line with tap, console file, QMP and pidfile', () => {
    const a = buildQemuArgs(cfg, 'CMD', 'tcg', paths);
    expect(after(a, '-M')).toEqual(['microvm,acpi=on']);
    expect(after(a, '-accel')).toEqual(['tcg']);
    expect(a).not.toContain('-cpu');
    expect(a).toEqual(expect.arrayContaining(['-nodefaults', '-no-user-config', '-nographic', '-no-reboot']));
    expect(after(a, '-kernel')).toEqual(['/img/vmlinux']);
    expect(after(a, '-initrd')).toEqual(['/img/initrd.gz']);
    expect(after(a, '-append')).toEqual(['CMD']);
    expect(after(a, '-netdev')).toEqual(['tap,id=net0,ifname=web-t,script=no,downscript=no']);
    expect(after(a, '-device')).toEqual(['virtio-net-device,netdev=net0,mac=02:00:00:00:00:05']);
    expect(after(a, '-chardev')).toEqual(['file,id=con,path=/run/jitsu/web/console.log,append=on']);
    expect(after(a, '-serial')).toEqual(['chardev:con']);
    expect(after(a, '-qmp')).toEqual(['unix:/run/jitsu/web/qmp.sock,server=on,wait=off']);
    expect(after(a, '-pidfile')).toEqual(['/run/jitsu/web/qemu.pid']);
    expect(after(a, '-m')).toEqual(['128']);
    expect(after(a, '-smp')).toEqual(['1']);
  });
  it('uses the host CPU under KVM, acpi=off when asked, and no -initrd without one', () => {
    const { initrd: _drop, ...noInitrd } = cfg;
    const a = buildQemuArgs({ ...noInitrd, acpi: false, memoryMiB: 256, vcpus: 2 }, 'CMD', 'kvm', paths);
    expect(after(a, '-cpu')).toEqual(['host']);
    expect(after(a, '-M')).toEqual(['microvm,acpi=off']);
    expect(a).not.toContain('-initrd');
    expect(after(a, '-m')).toEqual(['256']);
    expect(after(a, '-smp')).toEqual(['2']);
  });
  it('doubles commas in paths inside QEMU option values', () => {
    expect(qemuOptValue('/a,b/c')).toBe('/a,,b/c');
    const a = buildQemuArgs(cfg, 'CMD', 'tcg', runPaths('/run/x,y'));
    expect(after(a, '-qmp')).toEqual(['unix:/run/x,,y/qmp.sock,server=on,wait=off']);
  });
  it('the KVM probe boots without network and prints to stdout', () => {
    const a = buildProbeArgs(cfg);
    expect(after(a, '-accel')).toEqual(['kvm']);
    expect(a).not.toContain('-netdev');
    expect(after(a, '-serial')).toEqual(['stdio']);
    expect(after(a, '-append')[0]).toContain('jitsu.probe=1');
  });
});

describe('snapshot services', () => {
  const paths = runPaths('/run/web');
  it('put guest RAM in a file, add the agent port, and restore with -incoming defer', () => {
    const make = buildQemuArgs(cfg, 'c', 'tcg', paths, { mode: 'root' }, { memPath: '/dev/shm/s/web/mem', share: true, agentPipe: '/run/web/agent', incoming: false });
    expect(after(make, '-M')).toEqual(['microvm,acpi=on,memory-backend=mem']);
    expect(after(make, '-object')).toEqual(['memory-backend-file,id=mem,size=128M,mem-path=/dev/shm/s/web/mem,share=on']);
    expect(after(make, '-chardev')).toContain('pipe,id=agent,path=/run/web/agent');
    expect(after(make, '-device')).toContain('virtserialport,chardev=agent,name=jitsu.agent');
    expect(make).not.toContain('-incoming');
    const copy = buildQemuArgs(cfg, 'c', 'tcg', paths, { mode: 'root' }, { memPath: '/dev/shm/s/web/mem', share: false, agentPipe: '/run/web/agent', incoming: true });
    expect(after(copy, '-object')).toEqual(['memory-backend-file,id=mem,size=128M,mem-path=/dev/shm/s/web/mem,share=off']);
    expect(after(copy, '-incoming')).toEqual(['defer']);
    // Everything else is identical: a restore must match the machine it was saved from.
    const strip = (a: string[]): string[] => a.filter((x) => !x.startsWith('memory-backend-file') && x !== '-incoming' && x !== 'defer');
    expect(strip(copy)).toEqual(strip(make));
  });
  it('tell the guest to start its agent', () => {
    expect(buildCmdline({ cmdline: '', snapshot: 'template' }, 'web', net, undefined, 'tcg')).toContain(' jitsu.agent=1');
    expect(buildCmdline({ cmdline: '', snapshot: 'off' }, 'web', net, undefined, 'tcg')).not.toContain('jitsu.agent');
  });
  it('leave a plain service as it was', () => {
    expect(buildQemuArgs(cfg, 'c', 'tcg', paths).join(' ')).not.toMatch(/memory-backend|virtserialport|incoming/);
  });
});
