import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errorCode } from '../../errors.js';
import { cgroupFiles, cgroupV2Root, parseSize, planLimits, resolveIdentity } from './confine.js';

const dir = mkdtempSync(join(tmpdir(), 'jitsu-confine-'));
const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/bash\nweb:x:1001:1002::/nonexistent:/usr/sbin/nologin\n');
writeFileSync(files.group, 'root:x:0:\nwebgrp:x:1002:\nextra:x:1500:\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const thrown = (f: () => unknown): Error => {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
};

describe('service identity', () => {
  it('resolves names and numbers; the group defaults to the primary one', () => {
    expect(resolveIdentity('s', 'web', undefined, files)).toEqual({ user: 'web', uid: 1001, gid: 1002 });
    expect(resolveIdentity('s', 'web', 'extra', files)).toEqual({ user: 'web', uid: 1001, gid: 1500 });
    expect(resolveIdentity('s', '1001', '77', files)).toEqual({ user: 'web', uid: 1001, gid: 77 });
    expect(resolveIdentity('s', 'root', undefined, files).uid).toBe(0);
  });
  it('a missing default user names the fix: run setup, or user=root', () => {
    const err = thrown(() => resolveIdentity('s', 'jitsu-svc', undefined, files));
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect(err.message).toMatch(/user jitsu-svc does not exist: run scripts\/setup\.sh .*user=root/);
  });
  it('a missing group, or a bare uid without group=, is an error naming the key', () => {
    expect(thrown(() => resolveIdentity('s', 'web', 'nogroup', files)).message).toContain('group nogroup does not exist');
    expect(thrown(() => resolveIdentity('s', '4242', undefined, files)).message).toContain('set group=');
  });
});

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
    expect(thrown(() => planLimits('s', 's', { cpus: 1 }, id, undefined)).message).toContain('cpu= needs cgroup v2');
    expect(thrown(() => planLimits('s', 's', { tasks: 8 }, undefined, undefined)).message).toContain('root ignores');
  });
});
