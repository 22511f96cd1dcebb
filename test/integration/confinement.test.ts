/**
 * Confinement against the real thing: process services through the daemon (identity, capabilities,
 * no_new_privs, private /tmp, read-only /, rlimits), QEMU guests under -sandbox/-runas, crun
 * containers as a non-root user with seccomp. Reads /proc/<pid>/status of the running service.
 * Interfaces jcf*, subnets 10.209.N.0/24; everything is removed afterwards, even on failure.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { backend as qemu } from '../../src/backends/qemu/index.js';
import { ensureBridge, ensureHostAddresses, removeBridge, stableMac } from '../../src/network/index.js';
import { cleanupNetwork, dig, haveCommand, isRoot, startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { buildGuest, curl, firstByteMs, type GuestImage } from '../helpers/vm-env.js';

const run = promisify(execFile);
const PREFIX = 'jcf';
const SERVICE_USER = 'jitsu-svc';

function userId(name: string): number | undefined {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[2]) : undefined;
}
const svcUid = userId(SERVICE_USER);
const why = !isRoot() ? '(needs root)' : svcUid === undefined ? `(needs the ${SERVICE_USER} user: scripts/setup.sh --create-user)` : !haveCommand('python3') ? '(needs python3)' : '';

/** The confinement-relevant lines of /proc/<pid>/status. */
function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(Uid|Gid|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb|Seccomp):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

function expectConfined(status: Record<string, string>, uid: number, seccomp?: string): void {
  expect(status['Uid']).toBe(`${uid}\t${uid}\t${uid}\t${uid}`);
  expect(status['NoNewPrivs']).toBe('1');
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) expect(status[set], set).toBe('0000000000000000');
  if (seccomp !== undefined) expect(status['Seccomp']).toBe(seccomp);
}

/** Pids in a service's netns (the service, and the launcher's logger, which entered it too). */
async function netnsPids(service: string): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'pids', `jitsu-${service}`]).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter(Boolean).map(Number);
}

/** The service's own process: the one in its netns running as `uid`, or (root) the session leader. */
async function servicePid(service: string, uid: number): Promise<number> {
  for (const pid of await netnsPids(service)) {
    try {
      const st = procStatus(pid);
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm.startsWith('jitsu-')) continue; // the launcher's logger and supervisor
      if (Number(st['Uid']!.split('\t')[0]) === uid) return pid;
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no process of uid ${uid} in jitsu-${service}`);
}

/** GET from the host; resolves with the body once complete, and when the first byte came. */
function get(url: string, timeoutMs = 10_000): Promise<{ body: string; firstByteAt: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      let firstByteAt = 0;
      res.setEncoding('utf8').on('data', (d: string) => {
        firstByteAt ||= performance.now();
        body += d;
      });
      res.on('end', () => resolve({ body, firstByteAt: firstByteAt || performance.now() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function serviceLog(d: DaemonProcess, service: string): string {
  const dir = join(d.stateDir, 'run');
  for (const sub of existsSync(dir) ? readdirSync(dir) : []) {
    const path = join(dir, sub, `${service}.log`);
    if (existsSync(path)) return readFileSync(path, 'utf8');
  }
  return '';
}

describe.skipIf(why !== '')(`confinement: process services ${why}`, () => {
  const subnet = '10.209.1';
  const bridge = `${PREFIX}b1`;
  // Fixtures outside /tmp (the services get a private one) and readable by the service user.
  let fixtures = '';
  let d: DaemonProcess | undefined;
  const hostTmpMarker = `/tmp/${PREFIX}-written-by-service-${process.pid}`;

  const svc = (name: string, host: number, exec: string, extra = ''): string =>
    `name=${PREFIX}-${name},dns=${name}.jcf.test,ip=${subnet}.${host},port=80,exec="${exec}"${extra}`;

  beforeAll(async () => {
    await cleanupNetwork(PREFIX);
    fixtures = mkdtempSync('/var/tmp/jcf-');
    chmodSync(fixtures, 0o755);
    mkdirSync(join(fixtures, 'www'));
    writeFileSync(join(fixtures, 'www', 'index.html'), 'hello confined\n');
    mkdirSync(join(fixtures, 'shared'));
    chmodSync(join(fixtures, 'shared'), 0o1777); // writable by anyone: only read_only= can stop a write here
    // Tries to write where it must not, then serves. Results go to its log (stdout).
    writeFileSync(
      join(fixtures, 'probe.py'),
      `import os, sys, http.server
def attempt(path):
    try:
        with open(path, 'w') as f: f.write('x')
        return 'written'
    except OSError as e:
        return type(e).__name__ + ':' + str(e.errno)
print('PROBE etc=%s root=%s tmp=%s shared=%s' % (attempt('/etc/jitsu-test-x'), attempt('/root/x'), attempt('${hostTmpMarker}'), attempt(sys.argv[1] + '/shared/' + sys.argv[2])), flush=True)
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=80, bind='0.0.0.0')
`,
    );
    // Forks until it cannot (tasks=), reports, then serves.
    writeFileSync(
      join(fixtures, 'tasks.py'),
      `import os, signal, http.server
kids, failed = [], 0
for i in range(60):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        signal.pause()
        os._exit(0)
    kids.append(pid)
for k in kids: os.kill(k, signal.SIGKILL)
for k in kids: os.waitpid(k, 0)
print('TASKS forked=%d failed=%d' % (len(kids), failed), flush=True)
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=80, bind='0.0.0.0')
`,
    );
    // Serves, then allocates past memory= once the test says so (a file in the fixtures).
    writeFileSync(
      join(fixtures, 'grow.py'),
      `import os, sys, threading, time, http.server
srv = http.server.ThreadingHTTPServer(('0.0.0.0', 80), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
while not os.path.exists(sys.argv[1]): time.sleep(0.05)
print('GROW allocating 512 MiB', flush=True)
hog = bytearray(512 * 1024 * 1024)
print('GROW survived', flush=True)
`,
    );
    const py = (script: string, ...args: string[]): string => `python3 ${join(fixtures, script)} ${args.join(' ')}`;
    d = await startDaemon({
      bridge,
      args: ['-t', '1', '--sweep-interval', '0.2'],
      services: [
        // The README example, as the unprivileged user, and the same as root for the cost figure.
        svc('web', 10, 'python3 -m http.server --bind 0.0.0.0 80', `,cwd=${join(fixtures, 'www')}`),
        svc('rootweb', 11, 'python3 -m http.server --bind 0.0.0.0 80', `,cwd=${join(fixtures, 'www')},user=root`),
        svc('probe', 12, py('probe.py', fixtures, 'rw-ok'), `,cwd=${join(fixtures, 'www')}`),
        svc('ro', 13, py('probe.py', fixtures, 'ro-attempt'), `,cwd=${join(fixtures, 'www')},read_only=true`),
        svc('tasks', 14, py('tasks.py'), `,cwd=${join(fixtures, 'www')},tasks=24`),
        svc('mem', 15, py('grow.py', join(fixtures, 'grow-now')), `,cwd=${join(fixtures, 'www')},memory=256M,restart=no`),
        // A static binary binds its own low port (no pre-bound socket for it): allowed in its netns.
        svc('static', 16, `/bin/busybox httpd -f -p 80 -h ${join(fixtures, 'www')}`),
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await d?.stop();
    await cleanupNetwork(PREFIX);
    if (fixtures) rmSync(fixtures, { recursive: true, force: true });
    rmSync(hostTmpMarker, { force: true });
  }, 60_000);

  const boot = async (name: string): Promise<string> => {
    const r = await dig(d!.port, `${name}.jcf.test`);
    expect(r.status).toBe('NOERROR');
    return (await get(`http://${r.answers[0]!.split(/\s+/).at(-1)}/`)).body;
  };

  it('the README example serves as the unprivileged user: no capabilities, no_new_privs', async () => {
    expect(await boot('web')).toContain('hello confined');
    const status = procStatus(await servicePid(`${PREFIX}-web`, svcUid!));
    console.log(`confined python http.server: ${JSON.stringify(status)}`);
    expectConfined(status, svcUid!);
    // user=root is the explicit opt-out: uid 0 with the daemon's capabilities.
    await boot('rootweb');
    const root = procStatus(await servicePid(`${PREFIX}-rootweb`, 0));
    expect(root['Uid']).toBe('0\t0\t0\t0');
    expect(root['CapEff']).not.toBe('0000000000000000');
  });

  it('cannot write /etc, /root or the host /tmp; its /tmp is private; a world-writable dir is writable', async () => {
    await boot('probe');
    const line = serviceLog(d!, `${PREFIX}-probe`).split('\n').find((l) => l.startsWith('PROBE'));
    console.log(`confined writes: ${line}`);
    expect(line).toMatch(/etc=PermissionError:13 root=PermissionError:13 tmp=written shared=written/);
    // Its write to /tmp landed in its own tmpfs, not in the host's /tmp.
    expect(existsSync(hostTmpMarker)).toBe(false);
    expect(existsSync(join(fixtures, 'shared', 'rw-ok'))).toBe(true);
  });

  it('read_only=true makes / read-only for it (its private /tmp stays writable)', async () => {
    await boot('ro');
    const line = serviceLog(d!, `${PREFIX}-ro`).split('\n').find((l) => l.startsWith('PROBE'));
    console.log(`read_only=true writes: ${line}`);
    expect(line).toMatch(/etc=OSError:30 root=PermissionError:13 tmp=written shared=OSError:30/);
    expect(existsSync(join(fixtures, 'shared', 'ro-attempt'))).toBe(false);
  });

  it('tasks= stops a service forking past it (RLIMIT_NPROC on this host)', async () => {
    await boot('tasks');
    const line = serviceLog(d!, `${PREFIX}-tasks`).split('\n').find((l) => l.startsWith('TASKS'));
    console.log(`tasks=24: ${line}`);
    const m = /forked=(\d+) failed=(\d+)/.exec(line ?? '');
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(24);
    expect(Number(m![2])).toBeGreaterThan(60 - 24);
  });

  it('memory= ends a service that allocates past it; the daemon logs service exited', async () => {
    await boot('mem');
    writeFileSync(join(fixtures, 'grow-now'), '');
    await d!.waitForLog(new RegExp(`msg="?service exited"? service=${PREFIX}-mem[^\\n]*`), 20_000);
    const log = serviceLog(d!, `${PREFIX}-mem`);
    console.log(`memory=256M: ${log.split('\n').filter((l) => /GROW|MemoryError/.test(l)).join(' | ')}`);
    expect(log).toContain('MemoryError');
    expect(log).not.toContain('GROW survived');
  });

  it('a static server binds its own port 80 as the unprivileged user', async () => {
    expect(await boot('static')).toContain('hello confined');
    expectConfined(procStatus(await servicePid(`${PREFIX}-static`, svcUid!)), svcUid!);
  });

  it('figures: query -> first byte, confined vs user=root (python http.server, idle-stopped between boots)', async () => {
    const times: Record<string, number[]> = { web: [], rootweb: [] };
    for (let round = 0; round < 5; round++) {
      for (const name of ['web', 'rootweb']) {
        const service = `${PREFIX}-${name}`;
        // Wait until the idle sweep stopped it, so the next query boots it.
        await expect.poll(async () => (await netnsPids(service)).length, { timeout: 15_000, interval: 100 }).toBe(0);
        const t0 = performance.now();
        const r = await dig(d!.port, `${name}.jcf.test`);
        const { firstByteAt } = await get(`http://${r.answers[0]!.split(/\s+/).at(-1)}/`);
        times[name]!.push(firstByteAt - t0);
      }
    }
    const fmt = (xs: number[]): string => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    console.log(`FIGURE process boot, query -> first byte: confined ${fmt(times['web']!)}; user=root ${fmt(times['rootweb']!)}`);
    expect(times['web']!.length).toBe(5);
  }, 120_000);
});

const hasQemu = existsSync('/usr/bin/qemu-system-x86_64');
describe.skipIf(why !== '' || !hasQemu)(`confinement: QEMU guests ${hasQemu ? why : '(needs qemu-system-x86_64)'}`, () => {
  const subnet = '10.209.2';
  const bridge = `${PREFIX}b2`;
  let runRoot = '';
  let emptyRoot = '';
  let img: GuestImage;
  const live: { handle: BackendHandle; spec: ServiceSpec }[] = [];
  const timeout = (ms: number): AbortSignal => AbortSignal.timeout(ms);

  const vmSpec = (service: string, host: number, options: Record<string, string[]> = {}): ServiceSpec => {
    const runDir = join(runRoot, service);
    rmSync(runDir, { recursive: true, force: true });
    mkdirSync(runDir, { recursive: true });
    return {
      service,
      backend: 'qemu',
      network: { bridge, family: 4, ip: `${subnet}.${host}`, prefixLength: 24, gateway: `${subnet}.1`, mac: stableMac(service) },
      mask: 'none',
      options: { kernel: [img.stock], initrd: [img.initrd], tap: [`${PREFIX}t${host}`], ...options },
      runDir,
    };
  };
  /** start() + ready(); resolves with the handle and the ms from start() to the page's first byte. */
  const bootVm = async (s: ServiceSpec): Promise<{ handle: BackendHandle; ms: number }> => {
    const t0 = performance.now();
    const handle = await qemu.start(s, timeout(20_000));
    live.push({ handle, spec: s });
    await qemu.ready(handle, s, timeout(60_000));
    const ms = await firstByteMs(`http://${s.network.ip}/`, t0, 30_000);
    return { handle, ms };
  };
  const destroy = async (h: BackendHandle, s: ServiceSpec): Promise<void> => {
    await qemu.stop(h, s, 'destroy', timeout(15_000));
    live.splice(live.findIndex((l) => l.handle === h), 1);
  };

  beforeAll(async () => {
    img = await buildGuest();
    await cleanupNetwork(`${PREFIX}t`);
    await ensureBridge(bridge);
    await ensureHostAddresses(bridge, [`${subnet}.1/24`]);
    runRoot = mkdtempSync(join(tmpdir(), 'jcf-vm-'));
    emptyRoot = mkdtempSync('/var/tmp/jcf-chroot-');
  }, 120_000);
  afterAll(async () => {
    for (const { handle, spec } of [...live]) await qemu.stop(handle, spec, 'destroy', timeout(15_000)).catch(() => undefined);
    await cleanupNetwork(`${PREFIX}t`);
    await removeBridge(bridge).catch(() => undefined);
    for (const dir of [runRoot, emptyRoot]) if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('boots and serves under -sandbox and -runas (and chroot=); suspend, resume and shutdown work; the daemon keeps its files', async () => {
    const s = vmSpec(`${PREFIX}-vm`, 10, { chroot: [emptyRoot] });
    const { handle } = await bootVm(s);
    const status = procStatus(handle.pid!);
    console.log(`confined QEMU: ${JSON.stringify(status)}`);
    expect(status['Uid']).toBe(`${svcUid}\t${svcUid}\t${svcUid}\t${svcUid}`);
    expect(status['NoNewPrivs']).toBe('1');
    expect(status['Seccomp']).toBe('2');
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) expect(status[set], set).toBe('0000000000000000');
    // Its root is the chroot.
    const { stdout: root } = await run('readlink', [`/proc/${handle.pid}/root`]);
    expect(root.trim()).toBe(emptyRoot);
    expect(await curl(`http://${s.network.ip}/`)).toContain('jitsu');

    await qemu.stop(handle, s, 'suspend', timeout(10_000));
    expect(await qemu.state(handle, s)).toBe('paused');
    await qemu.resume!(handle, s, timeout(10_000));
    expect(await qemu.state(handle, s)).toBe('running');
    expect(await curl(`http://${s.network.ip}/`)).toContain('jitsu');

    await qemu.stop(handle, s, 'shutdown', timeout(30_000));
    live.splice(live.findIndex((l) => l.handle === handle), 1);
    expect(existsSync(`/proc/${handle.pid}/status`) && !/State:\s+Z/.test(readFileSync(`/proc/${handle.pid}/status`, 'utf8'))).toBe(false);
    // The exit record (this thread reaped QEMU) and the console are the daemon's, readable after.
    await expect.poll(() => existsSync(join(s.runDir, 'qemu.exit')), { timeout: 5_000 }).toBe(true);
    expect(readFileSync(join(s.runDir, 'console.log'), 'utf8')).toContain('jitsu-guest');
  }, 180_000);

  it('without chroot= (TCG) QEMU is started as the service user: it never holds root, and the sandbox denies elevating', async () => {
    const s = vmSpec(`${PREFIX}-vm-user`, 12);
    const { handle } = await bootVm(s);
    const status = procStatus(handle.pid!);
    expect(status['Uid']).toBe(`${svcUid}\t${svcUid}\t${svcUid}\t${svcUid}`);
    expect(status['NoNewPrivs']).toBe('1');
    expect(status['Seccomp']).toBe('2');
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) expect(status[set], set).toBe('0000000000000000');
    const argv = readFileSync(`/proc/${handle.pid}/cmdline`, 'latin1').split('\0');
    expect(argv).toContain('on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
    expect(argv).not.toContain('-runas');
    expect(await curl(`http://${s.network.ip}/`)).toContain('jitsu');
    await destroy(handle, s);
  }, 180_000);

  it('figures: start -> first byte of the page, confined (sandbox, unprivileged) vs user=root,sandbox=off', async () => {
    const times: Record<string, number[]> = { confined: [], root: [] };
    for (let round = 0; round < 3; round++) {
      const variants: [string, Record<string, string[]>][] = [['confined', {}], ['root', { user: ['root'], sandbox: ['off'] }]];
      for (const [kind, options] of variants) {
        const s = vmSpec(`${PREFIX}-vm-${kind}`, kind === 'confined' ? 20 : 21, options);
        const { handle, ms } = await bootVm(s);
        times[kind]!.push(ms);
        await destroy(handle, s);
      }
    }
    const fmt = (xs: number[]): string => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    console.log(`FIGURE qemu boot, start -> first byte (TCG or KVM per probe): confined ${fmt(times['confined']!)}; user=root,sandbox=off ${fmt(times['root']!)}`);
    expect(times['confined']!.length).toBe(3);
  }, 400_000);
});

const busyboxRoot = '/var/cache/jitsu/rootfs/busybox';
const hasCrun = haveCommand('crun') && existsSync(busyboxRoot);
describe.skipIf(why !== '' || !hasCrun)(`confinement: crun containers ${hasCrun ? why : '(needs crun and scripts/build-rootfs.sh)'}`, () => {
  const subnet = '10.209.3';
  const bridge = `${PREFIX}b3`;
  let d: DaemonProcess | undefined;
  const svc = (name: string, host: number, extra = ''): string =>
    `name=${PREFIX}-${name},dns=${name}.jcf.test,ip=${subnet}.${host},backend=container,rootfs=${busyboxRoot},exec=/bin/httpd -f -p 80 -h /www,port=80${extra}`;

  beforeAll(async () => {
    await cleanupNetwork(`${PREFIX}-c`);
    d = await startDaemon({ bridge, services: [svc('c-nobody', 10), svc('c-uid', 11, ',user=1234:4321')] });
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await cleanupNetwork(`${PREFIX}-c`);
  }, 60_000);

  it.each([
    ['c-nobody', 65534, 65534],
    ['c-uid', 1234, 4321],
  ])('%s runs as %i:%i with no_new_privs, no capabilities and the default seccomp profile', async (name, uid, gid) => {
    const r = await dig(d!.port, `${name}.jcf.test`);
    expect((await get(`http://${subnet}.${name === 'c-nobody' ? 10 : 11}/`)).body.length).toBeGreaterThan(0);
    expect(r.status).toBe('NOERROR');
    const status = procStatus(await servicePid(`${PREFIX}-${name}`, uid));
    console.log(`container ${name}: ${JSON.stringify(status)}`);
    expectConfined(status, uid, '2');
    expect(status['Gid']).toBe(`${gid}\t${gid}\t${gid}\t${gid}`);
  });
});
