import { describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../backend.js';
import { libvirtOptions, parseLibvirtOptions } from './index.js';
import { isNoDomain, parseDomIfList, parseDomState, runtimeStateOf, virshReason } from './virsh.js';

describe('virsh output parsers', () => {
  it('domstate with and without a reason', () => {
    expect(parseDomState('running\n\n')).toEqual({ state: 'running' });
    expect(parseDomState('shut off (destroyed)\n')).toEqual({ state: 'shut off', reason: 'destroyed' });
    expect(parseDomState('paused (user)\n')).toEqual({ state: 'paused', reason: 'user' });
    expect(parseDomState('in shutdown\n')).toEqual({ state: 'in shutdown' });
    expect(parseDomState('what is this\n')).toEqual({ state: 'unknown' });
  });
  it('maps libvirt states to runtime states', () => {
    expect(runtimeStateOf('running')).toBe('running');
    expect(runtimeStateOf('paused')).toBe('paused');
    expect(runtimeStateOf('pmsuspended')).toBe('paused');
    expect(runtimeStateOf('shut off')).toBe('stopped');
    expect(runtimeStateOf('crashed')).toBe('stopped');
    expect(runtimeStateOf('unknown')).toBe('unknown');
  });
  it('domiflist rows (quiet mode), skipping headers and junk', () => {
    const out = ' Interface   Type     Source   Model    MAC\n-------------------\n jt4v1       bridge   jt4b9    virtio   02:00:00:20:39:10\n -           network  default  virtio   52:54:00:AA:BB:CC\n';
    expect(parseDomIfList(out)).toEqual([
      { link: 'jt4v1', type: 'bridge', source: 'jt4b9', model: 'virtio', mac: '02:00:00:20:39:10' },
      { link: '-', type: 'network', source: 'default', model: 'virtio', mac: '52:54:00:aa:bb:cc' },
    ]);
  });
  it('error text', () => {
    expect(virshReason('error: failed to get domain \'x\'\n\n')).toBe("failed to get domain 'x'");
    expect(isNoDomain("error: failed to get domain 'x'")).toBe(true);
    expect(isNoDomain('error: Requested operation is not valid: domain is not running')).toBe(false);
  });
});

function spec(options: Record<string, string[]>, backendUri?: string): ServiceSpec {
  return {
    service: 'web', backend: 'libvirt', mask: 'none', options, runDir: '/tmp/x', ...(backendUri ? { backendUri } : {}),
    network: { bridge: 'jitsu0', family: 4, ip: '10.0.0.5', prefixLength: 24, gateway: '10.0.0.1', mac: '02:00:00:00:00:05' },
  };
}

describe('libvirt options', () => {
  it('domain defaults to the service name, URI to qemu:///system', () => {
    expect(parseLibvirtOptions(spec({}))).toEqual({ domain: 'web', uri: 'qemu:///system', shutdownTimeoutMs: 30_000 });
    expect(parseLibvirtOptions(spec({ domain: ['vm1'], shutdown_timeout: ['5'] }, 'qemu+ssh://h/system'))).toEqual({ domain: 'vm1', uri: 'qemu+ssh://h/system', shutdownTimeoutMs: 5000 });
  });
  it('rejects unknown keys and bad values with CONFIG_INVALID', () => {
    expect(() => parseLibvirtOptions(spec({ kernel: ['/k'] }))).toThrow(/unknown libvirt key "kernel"/);
    expect(() => parseLibvirtOptions(spec({ domain: ['bad name'] }))).toThrow(/domain must be/);
    expect(() => parseLibvirtOptions(spec({ shutdown_timeout: ['-1'] }))).toThrow(/shutdown_timeout/);
  });
  it('examples validate', () => {
    for (const o of libvirtOptions) expect(o.validate?.(o.example!)).toBeUndefined();
  });
});
