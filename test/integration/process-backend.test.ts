/**
 * The process backend through the piscina pool, with real namespaces, a real bridge and real curl.
 * Needs the compiled worker and demo server: `npx tsc -p .` and `npm run build:native` first.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, MaskMode, ServiceSpec } from '../../src/backends/backend.js';
import { errorCode } from '../../src/errors.js';
import { isLinkPassing } from '../../src/network/index.js';
import { pidsMatching } from '../helpers/daemon.js';
import { silentLogger } from '../../src/observe/log.js';
import { BackendPool, defaultWorkerFile } from '../../src/pool/index.js';
import { createNetEnv, leftovers, nstatCounter } from '../helpers/net-env.js';
import type { NetEnv } from '../helpers/net-env.js';
import { DEMO_HTTP } from '../helpers/daemon.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
// Staged outside the checkout: the service runs as jitsu-svc with a private /tmp.
const demo = DEMO_HTTP;
const built = existsSync(defaultWorkerFile()) && existsSync(demo) && existsSync(join(root, 'build', 'Release', 'jitsu-activate'));
const canRun = process.getuid?.() === 0 && built;
if (!built) console.warn('process backend tests skipped: run `npx tsc -p .` and `npm run build:native` first');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One HTTP GET from the host; resolves with the body. */
function get(url: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function curlFails(env: NetEnv, url: string): Promise<boolean> {
  try {
    await env.inClient('curl', ['-sS', '--max-time', '1', url], 5000);
    return false;
  } catch {
    return true;
  }
}

describe.skipIf(!canRun)('process backend via the worker pool (real netns + curl)', () => {
  let env: NetEnv;
  let pool: BackendPool;
  const live: { handle: BackendHandle; spec: ServiceSpec }[] = [];
  let host = 10;

  function spec(service: string, options: Record<string, string[]>, mask: MaskMode, ready?: number): ServiceSpec {
    env.track(service);
    return {
      service,
      backend: 'process',
      network: env.network(service, host++),
      mask,
      options,
      runDir: env.runDir,
      ...(ready ? { ready: { kind: 'tcp' as const, port: ready } } : {}),
    };
  }
  const demoExec = (...args: string[]): string => [process.execPath, demo, ...args].join(' ');
  async function start(s: ServiceSpec, timeoutMs = 10_000): Promise<BackendHandle> {
    const handle = await pool.start(s, timeoutMs);
    live.push({ handle, spec: s });
    return handle;
  }

  /** start() takes `held` over, ready(), a curl from the client netns is answered; prints the times. */
  async function timedHeldStart(s: ServiceSpec, held: BackendHandle, label: string): Promise<BackendHandle> {
    const t0 = performance.now();
    const handle = await start(s);
    const startMs = performance.now() - t0;
    expect(handle.pid).toBe(held.pid);
    await pool.ready(handle, s, 10_000);
    const readyMs = performance.now() - t0;
    await env.inClient('curl', ['-sS', '-o', '/dev/null', '--max-time', '5', `http://${s.network.ip}/`], 10_000);
    const firstByteMs = performance.now() - t0;
    console.log(`FIGURE process ${label}: start ${startMs.toFixed(1)} ms, ready ${readyMs.toFixed(1)} ms, first byte (curl in a netns) ${firstByteMs.toFixed(1)} ms`);
    return handle;
  }

  /** A standby killed while it is held is found at start, and a fresh launch serves instead. */
  async function expectDeadStandbyReplaced(s: ServiceSpec): Promise<void> {
    const dead = await pool.prepare(s, 10_000);
    process.kill(dead!.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    const fresh = await start(s);
    expect(fresh.pid).not.toBe(dead!.pid);
    await pool.ready(fresh, s, 10_000);
    await env.inClient('curl', ['-sS', '-o', '/dev/null', '--max-time', '5', `http://${s.network.ip}/`], 10_000);
    await pool.stop(fresh, s, 'destroy', 5000);
  }

  beforeAll(async () => {
    env = await createNetEnv(21, { client: true });
    pool = new BackendPool({ minThreads: 1, maxThreads: 2, logger: silentLogger });
  });
  afterAll(async () => {
    for (const { handle, spec: s } of live) await pool.stop(handle, s, 'destroy', 5000).catch(() => undefined);
    await pool?.close();
    await env?.cleanup();
  });

  it('serves curl from the host and from a client netns; destroy stops it', async () => {
    const s = spec('jt2-p-web', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const handle = await start(s);
    expect(handle).toMatchObject({ backend: 'process', service: 'jt2-p-web', link: 'jt2-p-web-v', mac: s.network.mac });
    expect(handle.pid).toBeGreaterThan(0);
    await pool.ready(handle, s, 10_000);
    expect(await pool.state(handle, s)).toBe('running');
    const { stdout } = await run('curl', ['-sS', '--max-time', '5', `http://${s.network.ip}:8080/any/path?x=1`]);
    expect(stdout).toBe('hello from jt2-p-web\n');
    const fromClient = await env.inClient('curl', ['-sS', '--max-time', '5', `http://${s.network.ip}:8080/`]);
    expect(fromClient.stdout).toBe('hello from jt2-p-web\n');

    await pool.stop(handle, s, 'destroy', 5000);
    expect(await pool.state(handle, s)).toBe('stopped');
    expect(isLinkPassing(handle.link!)).toBe(false);
    expect(await curlFails(env, `http://${s.network.ip}:8080/`)).toBe(true);
    await pool.stop(handle, s, 'destroy', 5000); // idempotent
  });

  it('socket activation: a connection made before the process serves succeeds with zero SYN retransmits', async () => {
    const s = spec('jt2-p-slow', { exec: [demoExec('--delay-ms', '500', '--message', "'slow but there'")], port: ['8080'] }, 'activate');
    const before = await nstatCounter(env.clientNetns!, 'TcpExtTCPSynRetrans');
    const handle = await start(s);
    // Issued at once: the process is still in its 500 ms "boot".
    const curl = env.inClient('curl', ['-sS', '--max-time', '10', '-w', '\n%{time_connect} %{time_total}', `http://${s.network.ip}:8080/`], 15_000);
    const readyAt = pool.ready(handle, s, 10_000);
    const { stdout } = await curl;
    await readyAt;
    const [body, timing] = stdout.split('\n\n').length > 1 ? stdout.split('\n\n') : [stdout.slice(0, stdout.lastIndexOf('\n')), stdout.slice(stdout.lastIndexOf('\n') + 1)];
    expect(body).toContain('slow but there');
    const [connect, total] = timing!.trim().split(' ').map(Number);
    expect(connect).toBeLessThan(0.2); // the kernel accepted the handshake at once
    expect(total).toBeGreaterThan(0.4); // ...and the answer came after the boot delay
    const after = await nstatCounter(env.clientNetns!, 'TcpExtTCPSynRetrans');
    expect(after - before).toBe(0);
    await pool.stop(handle, s, 'destroy', 5000);
  });

  it('shutdown: SIGTERM ends a well-behaved service; one ignoring TERM is killed when the time is up', async () => {
    const s = spec('jt2-p-term', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const handle = await start(s);
    await pool.ready(handle, s, 10_000);
    await get(`http://${s.network.ip}:8080/`);
    let t0 = performance.now();
    await pool.stop(handle, s, 'shutdown', 5000);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(await pool.state(handle, s)).toBe('stopped');

    const stubborn = spec('jt2-p-stub', { exec: [`/bin/sh -c 'trap "" TERM; sleep 60'`] }, 'none');
    const h2 = await start(stubborn);
    await new Promise((r) => setTimeout(r, 100));
    expect(await pool.state(h2, stubborn)).toBe('running');
    t0 = performance.now();
    await pool.stop(h2, stubborn, 'shutdown', 800);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThan(700); // it waited for TERM...
    expect(took).toBeLessThan(4000); // ...then SIGKILLed the whole group
    expect(await pool.state(h2, stubborn)).toBe('stopped');
  });

  it('suspend stops answering; resume answers again', async () => {
    const s = spec('jt2-p-susp', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const handle = await start(s);
    await pool.ready(handle, s, 10_000);
    const url = `http://${s.network.ip}:8080/`;
    expect((await env.inClient('curl', ['-sS', '--max-time', '5', url])).stdout).toContain('jt2-p-susp');
    await pool.stop(handle, s, 'suspend', 5000);
    expect(await pool.state(handle, s)).toBe('paused');
    expect(await curlFails(env, url)).toBe(true);
    await pool.resume(handle, s, 5000);
    expect(await pool.state(handle, s)).toBe('running');
    expect((await env.inClient('curl', ['-sS', '--max-time', '5', url])).stdout).toContain('jt2-p-susp');
    await pool.stop(handle, s, 'destroy', 5000);
    const err = await pool.resume(handle, s, 5000).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('NOT_RUNNING');
  });

  it('park/handshake: the host side stays down until ready() (the booting service is silent)', async () => {
    const s = spec('jt2-p-park', { exec: [demoExec('--delay-ms', '300')], port: ['8080'] }, 'park');
    const handle = await start(s);
    expect(isLinkPassing(handle.link!)).toBe(false);
    expect(await curlFails(env, `http://${s.network.ip}:8080/`)).toBe(true);
    await pool.ready(handle, s, 10_000);
    expect(isLinkPassing(handle.link!)).toBe(true);
    expect((await env.inClient('curl', ['-sS', '--max-time', '5', `http://${s.network.ip}:8080/`])).stdout).toContain('jt2-p-park');
    // suspend + resume: the link comes back in ready(), not in resume()
    await pool.stop(handle, s, 'suspend', 5000);
    expect(isLinkPassing(handle.link!)).toBe(false);
    await pool.resume(handle, s, 5000);
    expect(await pool.state(handle, s)).toBe('running');
    expect(isLinkPassing(handle.link!)).toBe(false);
    await pool.ready(handle, s, 5000);
    expect(isLinkPassing(handle.link!)).toBe(true);
    await pool.stop(handle, s, 'destroy', 5000);
  });

  it('without activation, ready() waits for the probe port to listen', async () => {
    const s = spec('jt2-p-probe', { exec: [demoExec('--port', '9090', '--delay-ms', '300')] }, 'none', 9090);
    const handle = await start(s);
    const t0 = performance.now();
    await pool.ready(handle, s, 10_000);
    expect(performance.now() - t0).toBeGreaterThan(250);
    expect(await get(`http://${s.network.ip}:9090/`)).toBe('hello from jt2-p-probe\n');
    await pool.stop(handle, s, 'destroy', 5000);
  });

  it('ready() is bounded: a service that never listens gives READY_TIMEOUT with its log', async () => {
    const s = spec('jt2-p-mute', { exec: [`/bin/sh -c 'echo still-thinking; exec sleep 30'`] }, 'none', 7000);
    const handle = await start(s);
    const t0 = performance.now();
    const err = await pool.ready(handle, s, 300).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(errorCode(err)).toBe('READY_TIMEOUT');
    expect((err as Error).message).toContain('port 7000');
    expect((err as Error).message).toContain('still-thinking');
    expect(await pool.state(handle, s)).toBe('running'); // the caller decides what to do with it
    await pool.stop(handle, s, 'destroy', 5000);
  });

  it('a failed boot is BOOT_FAILED with the exit status and the log tail', async () => {
    const s = spec('jt2-p-fail', { exec: [`/bin/sh -c 'echo boom-jt2 >&2; exit 7'`] }, 'none');
    const handle = await start(s);
    const err = await pool.ready(handle, s, 5000).catch((e: unknown) => e);
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect((err as Error).message).toContain('status 7');
    expect((err as Error).message).toContain('boom-jt2');
    expect((err as { details: { exitCode: number } }).details.exitCode).toBe(7);

    const missing = spec('jt2-p-nocmd', { exec: ['jt2-no-such-command --x'] }, 'none');
    const err2 = await pool.start(missing, 5000).catch((e: unknown) => e);
    expect(errorCode(err2)).toBe('BOOT_FAILED');
    expect((err2 as Error).message).toContain('command not found: jt2-no-such-command');

    // A launcher failure (here: cwd missing, exit 68) fails start() with the launcher's reason.
    const noDir = spec('jt2-p-nodir', { exec: [demoExec()], port: ['8080'], cwd: ['/nonexistent-jt2'] }, 'activate');
    const err4 = await pool.start(noDir, 5000).catch((e: unknown) => e);
    expect(errorCode(err4)).toBe('BOOT_FAILED');
    expect((err4 as Error).message).toContain('status 68 (cannot chdir to cwd)');
    expect((err4 as Error).message).toContain('chdir /nonexistent-jt2');

    // Bad keys are CONFIG_INVALID before anything runs.
    const badPort = spec('jt2-p-badport', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const taken = await start({ ...badPort, service: 'jt2-p-badport' });
    const err3 = await pool.start({ ...badPort, options: { exec: [demoExec()], port: ['8080', '8080x'] } }, 5000).catch((e: unknown) => e);
    expect(errorCode(err3)).toBe('CONFIG_INVALID');
    await pool.stop(taken, badPort, 'destroy', 5000);
  });

  it('pid-reuse defence: a handle whose pid now belongs to another process never signals it', async () => {
    const s = spec('jt2-p-reuse', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const handle = await start(s);
    await pool.stop(handle, s, 'destroy', 5000);
    // Start times count clock ticks (10 ms): a real reuse needs the pid space to wrap, far longer.
    await new Promise((r) => setTimeout(r, 50));
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const forged: BackendHandle = { ...handle, pid: stranger.pid!, data: { ...handle.data } };
      expect(await pool.state(forged, s)).toBe('stopped');
      await pool.stop(forged, s, 'destroy', 5000);
      await new Promise((r) => setTimeout(r, 100));
      expect(stranger.exitCode).toBeNull();
      expect(() => process.kill(stranger.pid!, 0)).not.toThrow();
    } finally {
      stranger.kill('SIGKILL');
    }
  });

  it('measures pool.start() -> first HTTP answer of the demo server with activation (median of 20)', async () => {
    const s = spec('jt2-p-bench', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const startMs: number[] = [];
    const firstByteMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const handle = await pool.start(s, 10_000);
      startMs.push(performance.now() - t0);
      try {
        expect(await get(`http://${s.network.ip}:8080/`)).toContain('jt2-p-bench');
        firstByteMs.push(performance.now() - t0);
      } finally {
        await pool.stop(handle, s, 'destroy', 5000);
      }
    }
    // Orchestration alone: a command that starts instantly (the kernel accepts from the moment
    // start() resolves, since the sockets are bound and the link is up by then).
    const bare = spec('jt2-p-bare', { exec: ['/bin/sleep 30'], port: ['8080'] }, 'activate');
    const bareMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const handle = await pool.start(bare, 10_000);
      bareMs.push(performance.now() - t0);
      await pool.stop(handle, bare, 'destroy', 5000);
    }
    console.log(
      `process backend: pool.start() median ${median(startMs).toFixed(2)} ms (bare command: ${median(bareMs).toFixed(2)} ms); ` +
        `start -> first HTTP answer (node demo) median ${median(firstByteMs).toFixed(1)} ms (min ${Math.min(...firstByteMs).toFixed(1)})`,
    );
    expect(median(startMs)).toBeLessThan(500);
  });

  it('precreate=on: prepare() runs the command up to its exec; start() lets it exec; a dead or stale one is replaced', async () => {
    const busybox = '/bin/busybox';
    const exec = `${busybox} httpd -f -p 80 -h /`;
    const s = spec('jt2-p-pre', { exec: [exec], precreate: ['on'] }, 'none', 80);
    const held = await pool.prepare(s, 10_000);
    expect(held?.pid).toBeGreaterThan(0);
    // Waiting before its exec: the launcher's copy of itself, in the netns, nothing listening, link down.
    expect(await pool.state(held!, s)).toBe('running');
    const { stdout: comm } = await run('cat', [`/proc/${held!.pid}/comm`]);
    expect(comm.trim()).toBe('jitsu-activate');
    expect(isLinkPassing(held!.link!)).toBe(false);
    // prepare() again keeps it (idempotent).
    expect((await pool.prepare(s, 10_000))?.pid).toBe(held!.pid);

    const handle = await timedHeldStart(s, held!, 'precreate=on');
    const { stdout: comm2 } = await run('cat', [`/proc/${handle.pid}/comm`]);
    expect(comm2.trim()).toBe('busybox');
    await pool.stop(handle, s, 'destroy', 5000);

    // A standby that died meanwhile is found at start and replaced by a fresh launch.
    await expectDeadStandbyReplaced(s);

    // Another service definition: the one waiting is ended, never started.
    const old = await pool.prepare(s, 10_000);
    const changed = { ...s, options: { ...s.options, exec: [`${busybox} httpd -f -p 80 -h /tmp`] } };
    const other = await start(changed);
    expect(other.pid).not.toBe(old!.pid);
    expect(await pool.state(old!, s)).toBe('stopped');
    await pool.ready(other, changed, 10_000);
    await pool.stop(other, changed, 'destroy', 5000);
    // precreate=off ends what waits.
    const waiting = await pool.prepare(s, 10_000);
    expect(await pool.prepare({ ...s, options: { exec: [exec] } }, 10_000)).toBeUndefined();
    expect(await pool.state(waiting!, s)).toBe('stopped');
  });

  it('precreate=warm: prepare() leaves the command serving but frozen and off the bridge; start() thaws that same process; a dead one is replaced', async () => {
    const exec = '/bin/busybox httpd -f -p 80 -h /';
    const s = spec('jt2-p-warm', { exec: [exec], precreate: ['warm'] }, 'none', 80);
    const held = await pool.prepare(s, 10_000);
    // The program itself, already listening in its netns, stopped by SIGSTOP (state T), its link down.
    const procState = async (pid: number): Promise<string> => (await run('cat', [`/proc/${pid}/stat`])).stdout.split(') ')[1]!.charAt(0);
    expect((await run('cat', [`/proc/${held!.pid}/comm`])).stdout.trim()).toBe('busybox');
    expect(await procState(held!.pid!)).toBe('T');
    expect(await pool.state(held!, s)).toBe('paused');
    const { stdout: listening } = await run('ip', ['netns', 'exec', `jitsu-${s.service}`, 'ss', '-ltnH', 'sport = :80']);
    expect(listening).toMatch(/^LISTEN/);
    expect(isLinkPassing(held!.link!)).toBe(false);
    // Off the bridge, it answers nobody.
    await expect(env.inClient('curl', ['-sS', '-o', '/dev/null', '--max-time', '1', `http://${s.network.ip}/`], 5_000)).rejects.toThrow();
    expect((await pool.prepare(s, 10_000))?.pid).toBe(held!.pid);

    const handle = await timedHeldStart(s, held!, 'precreate=warm');
    expect(await procState(handle.pid!)).not.toBe('T');
    await pool.stop(handle, s, 'destroy', 5000);

    // A frozen standby killed meanwhile is found at start and replaced by a fresh launch.
    await expectDeadStandbyReplaced(s);
    // precreate=on instead: the frozen one is ended, and what waits now is the launcher before its exec.
    const frozen = await pool.prepare(s, 10_000);
    const waiting = await pool.prepare({ ...s, options: { ...s.options, precreate: ['on'] } }, 10_000);
    expect(waiting!.pid).not.toBe(frozen!.pid);
    expect(await pool.state(frozen!, s)).toBe('stopped');
    await pool.stop(waiting!, s, 'destroy', 5000);
  });

  it('precreate=warm: a command that never serves fails prepare() in time, with its reason, and is ended', async () => {
    const s = spec('jt2-p-warmbad', { exec: ['/bin/sleep 31.25'], precreate: ['warm'] }, 'none', 80);
    await expect(pool.prepare(s, 1_500)).rejects.toMatchObject({ code: 'READY_TIMEOUT', message: expect.stringMatching(/process \d+ .*port 80 of 10\.[0-9.]+ in time/) });
    await expect.poll(() => pidsMatching('sleep 31.25'), { timeout: 5_000 }).toEqual([]);
    expect(await pool.prepare({ ...s, options: { exec: ['/bin/sleep 31.25'] } }, 5_000)).toBeUndefined();
  });

  it('services outlive the pool that started them; a new pool adopts the handle; no zombies', async () => {
    const s = spec('jt2-p-adopt', { exec: [demoExec()], port: ['8080'] }, 'activate');
    const first = new BackendPool({ minThreads: 1, maxThreads: 1, logger: silentLogger });
    const handle = await first.start(s, 10_000);
    try {
      await first.ready(handle, s, 10_000);
      await first.close();
      expect(await get(`http://${s.network.ip}:8080/`)).toBe('hello from jt2-p-adopt\n');
      expect(await pool.state(handle, s)).toBe('running');
    } finally {
      await pool.stop(handle, s, 'destroy', 5000);
    }
    expect(await pool.state(handle, s)).toBe('stopped');
    // Services are never children of the daemon (their supervisor, reparented to init, reaps them),
    // so no worker ever leaves a zombie behind, not even one that was closed.
    await new Promise((r) => setTimeout(r, 200));
    const { stdout } = await run('ps', ['--ppid', String(process.pid), '-o', 'stat=,pid=,comm=']);
    expect(stdout.split('\n').filter((l) => l.trim().startsWith('Z'))).toEqual([]);
  });

  it('passes env= and cwd= to the command, and runs IPv6 services', async () => {
    const s = spec('jt2-p-env', { exec: [`/bin/sh -c 'echo "foo=$FOO svc=$JITSU_SERVICE cwd=$(pwd)"; sleep 30'`], env: ['FOO=bar baz'], cwd: ['/tmp'] }, 'none');
    const handle = await start(s);
    const log = String(handle.data['logPath']);
    let text = '';
    for (let i = 0; i < 100 && !text.includes('foo='); i++) {
      await new Promise((r) => setTimeout(r, 20));
      text = existsSync(log) ? (await run('cat', [log])).stdout : '';
    }
    expect(text).toContain('foo=bar baz svc=jt2-p-env cwd=/tmp');
    await pool.stop(handle, s, 'destroy', 5000);

    const { ensureHostAddresses, stableMac } = await import('../../src/network/index.js');
    await ensureHostAddresses(env.bridge, ['fd00:201:21::1/64']);
    const v6: ServiceSpec = {
      ...spec('jt2-p-v6', { exec: [demoExec('--host', '::')], port: ['8080'] }, 'activate'),
      network: { bridge: env.bridge, family: 6, ip: 'fd00:201:21::10', prefixLength: 64, gateway: 'fd00:201:21::1', mac: stableMac('jt2-p-v6') },
    };
    const h6 = await start(v6);
    await pool.ready(h6, v6, 10_000);
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', 'http://[fd00:201:21::10]:8080/']);
    expect(stdout).toBe('hello from jt2-p-v6\n');
    await pool.stop(h6, v6, 'destroy', 5000);
  });

  it('leaves nothing behind', async () => {
    for (const { handle, spec: sp } of live.splice(0)) await pool.stop(handle, sp, 'destroy', 5000);
    await env.cleanup();
    expect(await leftovers('jt2')).toEqual([]);
  });
});
