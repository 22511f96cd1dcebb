import { describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../backend.js';
import { defaultTapName, parseQemuOptions, qemuOptions } from './options.js';

const hash = (): string => 'abcdef12';
function spec(options: Record<string, string[]>, service = 'web'): ServiceSpec {
  return {
    service, backend: 'qemu', mask: 'none', options, runDir: '/tmp/x',
    network: { bridge: 'jitsu0', family: 4, ip: '10.0.0.5', prefixLength: 24, gateway: '10.0.0.1', mac: '02:AA:00:00:00:05' },
  };
}

describe('qemu options', () => {
  it('defaults to the project guest image, the service MAC and bridge, 128 MiB, 1 vcpu, auto accel, acpi on', () => {
    const c = parseQemuOptions(spec({}), hash, { JITSU_CACHE: '/cache' });
    expect(c).toMatchObject({
      kernel: '/cache/guest/vmlinux-stock', initrd: '/cache/guest/initramfs.cpio.gz', cmdline: '', memoryMiB: 128, vcpus: 1,
      mac: '02:aa:00:00:00:05', bridge: 'jitsu0', tap: 'web-t', accel: 'auto', acpi: true, shutdownTimeoutMs: 10_000,
    });
  });
  it('an explicit kernel gets no default initrd', () => {
    const c = parseQemuOptions(spec({ kernel: ['/k'] }), hash, {});
    expect(c.kernel).toBe('/k');
    expect(c.initrd).toBeUndefined();
  });
  it('takes every key', () => {
    const c = parseQemuOptions(spec({
      kernel: ['/k'], initrd: ['/i'], cmdline: ['quiet'], memory: ['256'], vcpus: ['2'], mac: ['02:00:00:00:00:09'], nic: ['br1'],
      tap: ['jt4t9'], accel: ['tcg'], acpi: ['off'], shutdown_timeout: ['3'], qemu: ['/opt/qemu'],
      user: ['qemu-jitsu'], sandbox: ['off'], chroot: ['/var/empty'], snapshot: ['template'], prespawn: ['on'],
    }), hash, {});
    expect(c).toEqual({
      kernel: '/k', initrd: '/i', cmdline: 'quiet', memoryMiB: 256, vcpus: 2, mac: '02:00:00:00:00:09', bridge: 'br1', tap: 'jt4t9',
      accel: 'tcg', acpi: false, shutdownTimeoutMs: 3000, binary: '/opt/qemu', user: 'qemu-jitsu', sandbox: false, chroot: '/var/empty',
      snapshot: 'template', prespawn: 'on',
    });
  });
  it.each([
    [{ memory: ['lots'] }, /memory/],
    [{ memory: ['4'] }, /memory/],
    [{ vcpus: ['0'] }, /vcpus/],
    [{ mac: ['01:00:00:00:00:01'] }, /unicast/],
    [{ mac: ['zz'] }, /mac/],
    [{ nic: ['a-name-far-too-long'] }, /nic/],
    [{ accel: ['hvf'] }, /accel/],
    [{ acpi: ['yes'] }, /acpi/],
    [{ sandbox: ['yes'] }, /sandbox/],
    [{ chroot: ['rel'] }, /chroot/],
    [{ snapshot: ['yes'] }, /snapshot must be off or template/],
    [{ snapshot: ['template'], prespawn: ['yes'] }, /prespawn must be off, on, warm/],
    [{ prespawn: ['on'] }, /prespawn=on works from a template: add snapshot=template/],
    [{ user: ['a b'] }, /user/],
    [{ kernel: ['/a', '/b'] }, /given 2 times/],
    [{ kernal: ['/a'] }, /unknown qemu key "kernal"/],
  ])('rejects %j with CONFIG_INVALID naming the key', (options, re) => {
    let err: unknown;
    try {
      parseQemuOptions(spec(options), hash, {});
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((err as Error).message).toMatch(re);
  });
  it('derives tap names of at most 15 characters', () => {
    expect(defaultTapName('web', hash)).toBe('web-t');
    expect(defaultTapName('a-long-service-name', hash)).toBe('a-long-se-tabcd');
    expect(defaultTapName('we b', hash)).toBe('we-b-tabcd');
    for (const n of ['x', 'thirteen-char', 'fourteen-chars', 'ü'.repeat(20)]) expect(defaultTapName(n, hash).length).toBeLessThanOrEqual(15);
  });
  it('every option has a description, an example that validates', () => {
    for (const o of qemuOptions) {
      expect(o.description.length).toBeGreaterThan(10);
      expect(o.validate?.(o.example!)).toBeUndefined();
    }
  });
});
