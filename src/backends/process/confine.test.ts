import { describe, expect, it } from 'vitest';
import { cgroupFiles, cgroupV2Root, parseSize, planLimits } from './confine.js';
describe('resource limits', () => {
  it('parses sizes', () => {
    expect(parseSize('256M')).toBe(256 * 1024 ** 2);
    expect(parseSize('1g')).toBe(1024 ** 3);
    expect(parseSize('65536K')).toBe(64 * 1024 ** 2);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('1.5G')).toBeUndefined();
  });
  it('finds a usable cgroup v2 root only on a pure v2 host with the controllers', () => {
    const v2 = '30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n';
    const hybrid = '30 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n31 1 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n';
    expect(cgroupV2Root(v2, () => 'cpuset cpu io memory pids')).toBe('/sys/fs/cgroup');
    expect(cgroupV2Root(v2, () => 'cpuset io')).toBeUndefined();
    expect(cgroupV2Root(hybrid, () => 'hugetlb')).toBeUndefined();
  });
  it('cgroup v2 files', () => {
    expect(cgroupFiles({ memoryBytes: 1 << 20, cpus: 0.5, tasks: 16 })).toEqual({ 'memory.max': '1048576', 'memory.swap.max': '0', 'pids.max': '16', 'cpu.max': '50000 100000' });
  });
  it('falls back to rlimits without cgroup v2; cpu= and root tasks= fail rather than go unenforced', () => {
    const id = { user: 'web', uid: 1001, gid: 1002 };
    expect(planLimits('s', 's', {}, id, undefined)).toEqual({ mechanism: 'none', args: [] });
    expect(planLimits('s', 's', { memoryBytes: 1024, tasks: 8 }, id, undefined)).toEqual({ mechanism: 'rlimit', args: ['--rlimit', 'as=1024', '--rlimit', 'nproc=8'] });
    expect(() => planLimits('s', 's', { cpus: 1 }, id, undefined)).toThrow('cpu= needs cgroup v2');
    expect(() => planLimits('s', 's', { tasks: 8 }, undefined, undefined)).toThrow('root ignores');
  });
});
