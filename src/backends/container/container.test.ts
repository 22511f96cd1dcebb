import { afterEach, beforeEach, describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorCode } from '../../errors.js';
import { containerOptions, parseContainerOptions } from './options.js';
import { defaultOciConfig, serviceOciConfig, type OciConfig } from './oci.js';
import { crunArgv, crunCommand, detectHybridCgroups, isNoSuchContainer, lastLine, mapCrunFailure, parseCrunState, releaseCreated, runtimeStateOf, which } from './crun.js';
import { containerId } from './index.js';

const caught = (f: () => unknown): { code?: string; message: string; details: { key?: string } } => {
  try {
    f();
  } catch (err) {
    return err as { code?: string; message: string; details: { key?: string } };
  }
  throw new Error('expected a throw');
};

describe('container options', () => {
  it('parses rootfs + exec + ports + env + cwd', () => {
    const c = parseContainerOptions('www', { rootfs: ['/r'], exec: ['/bin/httpd -f -p "80"'], port: ['80', '443', '80'], env: ['A=1', 'B=x=y'], cwd: ['/www'], readonly: ['false'] });
    expect(c).toEqual({ rootfs: '/r', args: ['/bin/httpd', '-f', '-p', '80'], ports: [80, 443], env: ['A=1', 'B=x=y'], cwd: '/www', readonly: false, precreate: false });
  });

  it('precreate=on|off (default off); anything else names the key and the values', () => {
    expect(parseContainerOptions('www', { rootfs: ['/r'], exec: ['/x'], precreate: ['on'] }).precreate).toBe(true);
    expect(parseContainerOptions('www', { rootfs: ['/r'], exec: ['/x'], precreate: ['off'] }).precreate).toBe(false);
    const e = caught(() => parseContainerOptions('www', { rootfs: ['/r'], exec: ['/x'], precreate: ['yes'] }));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.details.key).toBe('precreate');
    expect(e.message).toMatch(/precreate must be on or off, got "yes"/);
    expect(containerOptions.find((o) => o.key === 'precreate')!.description).toMatch(/crun create/);
  });

  it('runs shell syntax through /bin/sh -c, like the process backend', () => {
    expect(parseContainerOptions('www', { rootfs: ['/r'], exec: ['a | b'] }).args).toEqual(['/bin/sh', '-c', 'a | b']);
  });

  it('takes a bundle without exec (the bundle has its own args)', () => {
    expect(parseContainerOptions('www', { bundle: ['/b'] })).toEqual({ bundle: '/b', ports: [], env: [], precreate: false });
  });

  it.each([
    [{}, 'bundle', /exactly one of bundle/],
    [{ bundle: ['/b'], rootfs: ['/r'] }, 'bundle', /exactly one of bundle/],
    [{ rootfs: ['/r'] }, 'exec', /required with rootfs/],
    [{ rootfs: ['r'], exec: ['x'] }, 'rootfs', /absolute/],
    [{ bundle: ['/b'], port: ['0'] }, 'port', /1-65535/],
    [{ bundle: ['/b'], port: ['http'] }, 'port', /1-65535/],
    [{ bundle: ['/b'], env: ['=x'] }, 'env', /KEY=VALUE/],
    [{ bundle: ['/b'], env: ['LISTEN_FDS=3'] }, 'env', /socket activation/],
    [{ bundle: ['/b'], cwd: ['www'] }, 'cwd', /absolute/],
    [{ bundle: ['/b'], readonly: ['yes'] }, 'readonly', /true or false/],
    [{ bundle: ['/b'], exec: ['"unclosed'] }, 'exec', /unclosed/],
    [{ bundle: ['/b'], kernel: ['/k'] }, 'kernel', /unknown container key/],
    [{ bundle: ['/b', '/c'] }, 'bundle', /give it once/],
  ])('rejects %j naming %s', (options, key, message) => {
    const err = caught(() => parseContainerOptions('www', options));
    expect(errorCode(err)).toBe('CONFIG_INVALID');
    expect(err.details.key).toBe(key);
    expect(err.message).toMatch(message);
  });

  it('documents every key', () => {
    for (const o of containerOptions) expect(o.description.length).toBeGreaterThan(10);
  });
});

describe('OCI config', () => {
  const inputs = {
    config: { rootfs: '/r', args: ['/bin/httpd'], ports: [80, 443], env: ['MODE=prod'], precreate: false },
    hostname: 'jitsu-www',
    netnsPath: '/run/netns/jitsu-www',
    listenPorts: [80, 443],
  };

  it('generates a locked-down config that joins the service netns and carries the activation env', () => {
    const c = serviceOciConfig(defaultOciConfig('/r', ['/bin/httpd']), inputs) as {
      root: { path: string; readonly: boolean };
      hostname: string;
      process: { args: string[]; env: string[]; cwd: string; terminal: boolean; capabilities: { bounding: string[] } };
      linux: { namespaces: Array<{ type: string; path?: string }> };
    };
    expect(c.root).toEqual({ path: '/r', readonly: true });
    expect(c.hostname).toBe('jitsu-www');
    expect(c.process.args).toEqual(['/bin/httpd']);
    expect(c.process.terminal).toBe(false);
    expect(c.process.cwd).toBe('/');
    expect(c.process.env).toEqual([expect.stringMatching(/^PATH=/), 'MODE=prod', 'LISTEN_FDS=2', 'LISTEN_FDNAMES=tcp-80:tcp-443']);
    // No capabilities, nobody, a seccomp profile; low ports open through the netns sysctl instead.
    expect(c.process.capabilities.bounding).toEqual([]);
    expect((c.process as unknown as { user: unknown }).user).toEqual({ uid: 65534, gid: 65534 });
    const linux = (c as unknown as { linux: { seccomp: { syscalls: { names: string[] }[] }; sysctl: Record<string, string> } }).linux;
    expect(linux.seccomp.syscalls[0]!.names).toContain('mount');
    expect(linux.sysctl).toEqual({ 'net.ipv4.ip_unprivileged_port_start': '0' });
    expect(c.linux.namespaces).toEqual([{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', path: '/run/netns/jitsu-www' }]);
  });

  it('overlays a bundle config: relative root resolved, its netns and stale LISTEN_ env replaced, its args kept', () => {
    const bundle: OciConfig = {
      ociVersion: '1.0.2',
      root: { path: 'rootfs' },
      process: { terminal: true, args: ['/app'], env: ['PATH=/bin', 'LISTEN_FDS=9', 'X=1'], cwd: '/srv' },
      linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }], resources: { devices: [] } },
      annotations: { keep: 'me' },
    };
    const c = serviceOciConfig(bundle, { ...inputs, config: { bundle: '/b', ports: [80], env: [], precreate: false }, listenPorts: [] }, '/b') as {
      root: { path: string };
      process: { args: string[]; env: string[]; cwd: string; terminal: boolean };
      linux: { namespaces: unknown[]; resources: unknown };
      annotations: unknown;
    };
    expect(c.root.path).toBe('/b/rootfs');
    expect(c.process).toMatchObject({ args: ['/app'], env: ['PATH=/bin', 'X=1'], cwd: '/srv', terminal: false });
    expect(c.linux.namespaces).toEqual([{ type: 'pid' }, { type: 'mount' }, { type: 'network', path: '/run/netns/jitsu-www' }]);
    expect(c.linux.resources).toEqual({ devices: [] });
    expect(c.annotations).toEqual({ keep: 'me' });
    // The input is not modified.
    expect((bundle['process'] as { terminal: boolean }).terminal).toBe(true);
  });
});

describe('crun', () => {
  const mount = (id: number, point: string, fs: string): string => `${id} 1 0:${id} / ${point} rw,nosuid - ${fs} ${fs} rw`;

  it('detects a hybrid cgroup host (v1 + v2 at unified) and nothing else', () => {
    const hybrid = [mount(30, '/sys/fs/cgroup', 'tmpfs'), mount(31, '/sys/fs/cgroup/cpu', 'cgroup'), mount(32, '/sys/fs/cgroup/unified', 'cgroup2')].join('\n');
    const v2 = mount(30, '/sys/fs/cgroup', 'cgroup2');
    const v1 = [mount(30, '/sys/fs/cgroup', 'tmpfs'), mount(31, '/sys/fs/cgroup/cpu', 'cgroup')].join('\n');
    expect(detectHybridCgroups(hybrid)).toBe(true);
    expect(detectHybridCgroups(v2)).toBe(false);
    expect(detectHybridCgroups(v1)).toBe(false);
  });

  it('builds crun argv, wrapped in a private mount namespace on hybrid hosts', () => {
    const paths = { crun: 'crun', root: '/run/s/crun', log: '/run/s/crun.log' };
    const run = crunArgv.run('jitsu-www', '/run/s/bundle', '/run/s/pid', 2);
    expect(run).toEqual(['run', '--detach', '--bundle=/run/s/bundle', '--pid-file=/run/s/pid', '--preserve-fds=2', 'jitsu-www']);
    expect(crunArgv.run('x', '/b', '/p', 0)).not.toContain('--preserve-fds=0');
    expect(crunCommand(paths, run, false)).toEqual(['crun', '--root=/run/s/crun', '--log=file:/run/s/crun.log', ...run]);
    const wrapped = crunCommand({ crun: 'crun', root: '/r' }, crunArgv.run('x', '/b', '/p', 0), true);
    expect(wrapped[0]).toMatch(/(^|\/)unshare$/);
    expect(wrapped.slice(1, 4)).toEqual(['--mount', '--propagation', 'private']);
    expect(wrapped).toContain('umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"');
    expect(wrapped.slice(-7)).toEqual(['crun', '--root=/r', 'run', '--detach', '--bundle=/b', '--pid-file=/p', 'x']);
    // Only creation needs the wrapper.
    expect(crunCommand({ crun: 'crun', root: '/r' }, crunArgv.kill('x', 'KILL'), true)).toEqual(['crun', '--root=/r', 'kill', 'x', 'KILL']);
    expect(crunArgv.delete('x')).toEqual(['delete', '--force', 'x']);
    expect(crunArgv.pause('x')).toEqual(['pause', 'x']);
    expect(crunArgv.resume('x')).toEqual(['resume', 'x']);
    expect(crunArgv.state('x')).toEqual(['state', 'x']);
  });

  it('creates ahead through the same wrapper as run; start needs none', () => {
    const create = crunArgv.create('jitsu-www', '/b', '/p', 1);
    expect(create).toEqual(['create', '--bundle=/b', '--pid-file=/p', '--preserve-fds=1', 'jitsu-www']);
    expect(crunCommand({ crun: 'crun', root: '/r' }, create, true)[0]).toMatch(/(^|\/)unshare$/);
    expect(crunCommand({ crun: 'crun', root: '/r' }, crunArgv.start('x'), true)).toEqual(['crun', '--root=/r', 'start', 'x']);
  });

  describe('releaseCreated (what crun start does, without exec)', () => {
    let dir = '';
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'jitsu-fifo-'));
      mkdirSync(join(dir, 'c1'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('writes one byte to a waiting reader and unlinks the fifo', () => {
      const fifo = join(dir, 'c1', 'exec.fifo');
      execFileSync('mkfifo', [fifo]);
      // The reader stands for the container's init, blocked on the fifo.
      const reader = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      try {
        expect(releaseCreated(dir, 'c1')).toBe(true);
        expect(existsSync(fifo)).toBe(false);
        const buf = Buffer.alloc(4);
        expect(readSync(reader, buf)).toBe(1);
      } finally {
        closeSync(reader);
      }
    });

    it('is false, without blocking, when no init waits on the fifo or it is gone', () => {
      execFileSync('mkfifo', [join(dir, 'c1', 'exec.fifo')]);
      expect(releaseCreated(dir, 'c1')).toBe(false);
      expect(existsSync(join(dir, 'c1', 'exec.fifo'))).toBe(true);
      expect(releaseCreated(dir, 'nope')).toBe(false);
    });
  });

  it('parses crun state (real crun 1.8 output) and maps its statuses', () => {
    const real = '{\n    "ociVersion": "1.0.0",\n    "id": "p2",\n    "pid": 22406,\n    "status": "running",\n    "bundle": "/tmp/b",\n    "rootfs": "rootfs",\n    "created": "2026-11-23T06:56:50.268868Z",\n    "systemd-scope": "",\n    "owner": "root"\n}\n';
    expect(parseCrunState(real)).toEqual({ status: 'running', pid: 22406 });
    expect(() => parseCrunState('[]')).toThrow();
    expect(['running', 'paused', 'stopped', 'created', 'weird'].map(runtimeStateOf)).toEqual(['running', 'paused', 'stopped', 'stopped', 'unknown']);
  });

  it('maps crun failures (real crun 1.8 messages)', () => {
    const gone = mapCrunFailure('kill', 'jitsu-x', { exitCode: 1, stdout: '', stderr: 'error opening file `/r/jitsu-x/status`: No such file or directory' }, '');
    expect(gone.code).toBe('NOT_RUNNING');
    expect(isNoSuchContainer('error opening file `/r/jitsu-x/status`: No such file or directory')).toBe(true);
    const hybrid = mapCrunFailure('run', 'jitsu-x', { exitCode: 1, stdout: '', stderr: '' }, 'cgroups in hybrid mode not supported, drop all controllers from cgroupv2');
    expect(hybrid.code).toBe('BACKEND_UNSUPPORTED');
    const missing = mapCrunFailure('run', 'jitsu-x', { exitCode: null, stdout: '', stderr: '', spawnError: 'ENOENT: spawn crun ENOENT' }, '');
    expect(missing.message).toMatch(/apt-get install crun/);
    const other = mapCrunFailure('pause', 'jitsu-x', { exitCode: 1, stdout: '', stderr: 'boom\n' }, '');
    expect(other.code).toBe('STOP_FAILED');
    expect(other.message).toContain('boom');
  });

  it('resolves programs on PATH once, to absolute paths', () => {
    expect(which('sh')).toMatch(/^\/.*\/sh$/);
    expect(which('no-such-program-jt5')).toBe('no-such-program-jt5');
  });

  it('takes the last line of crun output, unwrapping JSON log lines', () => {
    expect(lastLine('a\nb\n\n')).toBe('b');
    expect(lastLine('{"msg":"executable file `/x` not found","level":"error"}\n')).toBe('executable file `/x` not found');
  });

  it('names containers after the service, within crun\'s id alphabet', () => {
    expect(containerId('www')).toBe('jitsu-www');
    expect(containerId('a b/c')).toMatch(/^jitsu-a-b-c-[0-9a-f]{8}$/);
    expect(containerId('a b/c')).not.toBe(containerId('a-b-c'));
  });
});
