// The container backend against the real thing: crun, a netns per service on bridge jt5br0, curl from a
// client netns, nstat for SYN retransmissions. Addresses 10.204.1.0/24, interfaces jt5*.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { createContainerBackend } from '../../src/backends/container/index.js';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { isLinkPassing } from '../../src/network/index.js';
import { BRIDGE, clientSynRetrans, inClient, removeDirs, rootfs, serviceSpec, setupNetwork, teardownNetwork } from '../helpers/container-net.js';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const why =
  process.getuid?.() !== 0 ? 'needs root (netns, bridge, crun)' : !has('crun') ? 'crun is not installed' : !existsSync('build/Release/jitsu-activate') ? 'build/Release/jitsu-activate is not built' : '';

const SERVICES = ['jt5web', 'jt5act', 'jt5stop', 'jt5bad', 'jt5bench'];
const never = new AbortController().signal;

/** Time from connect() to the first response byte; resolves the whole reply. */
function httpGet(ip: string, port = 80, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: ip, port });
    let body = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply from ${ip}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${ip}\r\n\r\n`));
    sock.on('data', (d: string) => (body += d));
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(body);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Resolves at the first byte of the reply. */
function firstByte(ip: string, port = 80, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: ip, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${ip}\r\n\r\n`));
    sock.once('data', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe.skipIf(why !== '')(`container backend with real crun ${why}`, () => {
  const runDirs: string[] = [];
  const handles: Array<[BackendHandle, ServiceSpec]> = [];
  const backend = createContainerBackend({ shutdownTimeoutMs: 2000 });
  let busybox = '';
  let nodeRoot = '';

  beforeAll(async () => {
    busybox = rootfs('busybox');
    nodeRoot = rootfs('node');
    await setupNetwork();
  });

  afterAll(async () => {
    for (const [h, s] of handles) await backend.stop(h, s, 'destroy', never).catch(() => undefined);
    await teardownNetwork(SERVICES);
    removeDirs(runDirs);
  });

  async function start(spec: ServiceSpec): Promise<BackendHandle> {
    const h = await backend.start(spec, never);
    handles.push([h, spec]);
    return h;
  }

  it('serves busybox httpd from a rootfs: curl from a client netns and from the host get the page', async () => {
    const spec = serviceSpec('jt5web', 1, { rootfs: [busybox], exec: ['/bin/httpd -f -p 80 -h /www'], port: ['80'] }, 'none', runDirs);
    const h = await start(spec);
    expect(h.pid).toBeGreaterThan(0);
    expect(h.link).toBe('jt5web-v');
    await backend.ready(h, spec, never);
    expect(await backend.state(h, spec)).toBe('running');
    expect(await inClient('curl', ['-s', '--max-time', '5', `http://${spec.network.ip}/`])).toBe('hello from a jitsu container\n');
    expect(await httpGet(spec.network.ip)).toMatch(/^HTTP\/1\.[01] 200[\s\S]*hello from a jitsu container/);

    await backend.stop(h, spec, 'destroy', never);
    expect(await backend.state(h, spec)).toBe('stopped');
    expect(isLinkPassing('jt5web-v')).toBe(false);
    // Stop is idempotent, in every mode.
    await backend.stop(h, spec, 'destroy', never);
    await backend.stop(h, spec, 'suspend', never);
    await backend.stop(h, spec, 'shutdown', never);
  });

  it('mask=park keeps the veth down until ready (Synjitsu owns the early SYNs), then serves', async () => {
    const spec = serviceSpec('jt5web', 1, { rootfs: [busybox], exec: ['sh -c "sleep 0.3; exec httpd -f -p 80 -h /www"'], port: ['80'] }, 'park', runDirs);
    const h = await start(spec);
    expect(isLinkPassing('jt5web-v')).toBe(false);
    await backend.ready(h, spec, never);
    expect(isLinkPassing('jt5web-v')).toBe(true);
    expect(await httpGet(spec.network.ip)).toContain('hello from a jitsu container');
    await backend.stop(h, spec, 'destroy', never);
    expect(isLinkPassing('jt5web-v')).toBe(false);
  });

  it('runs an existing OCI bundle made by `crun spec`, joined to the service netns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jt5-bundle-'));
    runDirs.push(dir);
    execFileSync('crun', ['spec'], { cwd: dir });
    symlinkSync(busybox, join(dir, 'rootfs'));
    const spec = serviceSpec('jt5web', 1, { bundle: [dir], exec: ['/bin/httpd -f -p 8080 -h /www'], port: ['8080'] }, 'none', runDirs);
    const h = await start(spec);
    await backend.ready(h, spec, never);
    expect(await inClient('curl', ['-s', '--max-time', '5', `http://${spec.network.ip}:8080/`])).toBe('hello from a jitsu container\n');
    await backend.stop(h, spec, 'destroy', never);
    expect(await backend.state(h, spec)).toBe('stopped');
  });

  it('socket activation holds an early connection with zero SYN retransmits while the server starts late', async () => {
    const spec = serviceSpec('jt5act', 2, { rootfs: [nodeRoot], exec: ['/usr/bin/node /srv/server.js'], port: ['80'], env: ['DELAY_MS=1500'] }, 'activate', runDirs);
    const synBefore = await clientSynRetrans();
    const t0 = performance.now();
    const h = await start(spec);
    // Ready at once: the kernel already listens for the container.
    await backend.ready(h, spec, never);
    // systemd's protocol as the container's init sees it (pid 1 in its pid namespace). crun may return
    // a moment before its init has exec'd the server: wait for the exec first.
    const deadline = Date.now() + 2000;
    while (!execFileSync('cat', [`/proc/${h.pid}/cmdline`], { encoding: 'utf8' }).startsWith('/usr/bin/node') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const environ = execFileSync('cat', [`/proc/${h.pid}/environ`], { encoding: 'utf8' }).split('\0');
    expect(environ).toEqual(expect.arrayContaining(['LISTEN_FDS=1', 'LISTEN_PID=1', 'LISTEN_FDNAMES=tcp-80', 'DELAY_MS=1500']));
    const body = await inClient('curl', ['-s', '--max-time', '10', `http://${spec.network.ip}/`]);
    const elapsed = performance.now() - t0;
    expect(body).toBe('hello from a jitsu container\n');
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(elapsed).toBeLessThan(1000 + 1500 + 2000);
    expect((await clientSynRetrans()) - synBefore).toBe(0);
    await backend.stop(h, spec, 'destroy', never);
  });

  it('stop modes: suspend/resume (crun pause), shutdown honours TERM, shutdown kills a process that ignores it', async () => {
    // busybox sh as pid 1 exits on TERM only because it traps it.
    const exec = 'trap "exit 0" TERM; httpd -p 80 -h /www; while true; do sleep 1; done';
    const spec = serviceSpec('jt5stop', 3, { rootfs: [busybox], exec: [exec], port: ['80'] }, 'none', runDirs);
    let h = await start(spec);
    await backend.ready(h, spec, never);
    await backend.stop(h, spec, 'suspend', never);
    expect(await backend.state(h, spec)).toBe('paused');
    await expect(httpGet(spec.network.ip, 80, 500)).rejects.toThrow();
    await backend.resume!(h, spec, never);
    expect(await backend.state(h, spec)).toBe('running');
    expect(await httpGet(spec.network.ip)).toContain('hello from a jitsu container');

    let t = performance.now();
    await backend.stop(h, spec, 'shutdown', never);
    expect(performance.now() - t).toBeLessThan(1500);
    expect(await backend.state(h, spec)).toBe('stopped');

    // A caller's deadline cuts the TERM wait short too (then KILL): here 300 ms instead of our 2 s.
    const quick = { ...spec, options: { ...spec.options, exec: ['/bin/httpd -f -p 80 -h /www'] } };
    h = await start(quick);
    await backend.ready(h, quick, never);
    t = performance.now();
    await backend.stop(h, quick, 'shutdown', AbortSignal.timeout(300));
    expect(performance.now() - t).toBeLessThan(1500);
    expect(await backend.state(h, quick)).toBe('stopped');

    // httpd as pid 1 has no TERM handler, so the kernel drops TERM: shutdown must fall back to KILL.
    const stubborn = { ...spec, options: { ...spec.options, exec: ['/bin/httpd -f -p 80 -h /www'] } };
    h = await start(stubborn);
    await backend.ready(h, stubborn, never);
    t = performance.now();
    await backend.stop(h, stubborn, 'shutdown', never);
    expect(performance.now() - t).toBeGreaterThanOrEqual(1900);
    expect(await backend.state(h, stubborn)).toBe('stopped');
    expect(h.pid && existsSync(`/proc/${h.pid}/stat`) && !/\) Z/.test(execFileSync('cat', [`/proc/${h.pid}/stat`], { encoding: 'utf8' }))).toBeFalsy();
  });

  it('destroy ends a suspended (frozen) container too', async () => {
    const spec = serviceSpec('jt5stop', 3, { rootfs: [busybox], exec: ['/bin/httpd -f -p 80 -h /www'], port: ['80'] }, 'none', runDirs);
    const h = await start(spec);
    await backend.ready(h, spec, never);
    await backend.stop(h, spec, 'suspend', never);
    expect(await backend.state(h, spec)).toBe('paused');
    await backend.stop(h, spec, 'destroy', never);
    expect(await backend.state(h, spec)).toBe('stopped');
    await expect(httpGet(spec.network.ip, 80, 300)).rejects.toThrow();
  });

  it('a bundle that fails to start is BOOT_FAILED with crun\'s cause', async () => {
    const spec = serviceSpec('jt5bad', 4, { rootfs: [busybox], exec: ['/bin/no-such-server'] }, 'none', runDirs);
    const err = await backend.start(spec, never).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; details: { cause: string } },
    );
    expect(err?.code).toBe('BOOT_FAILED');
    expect(err?.details.cause).toMatch(/no-such-server.*not found/);
    expect(err?.message).toContain('/bin/no-such-server');
  });

  it('a container that exits at once fails ready with BOOT_FAILED and its last log line', async () => {
    const spec = serviceSpec('jt5bad', 4, { rootfs: [busybox], exec: ['sh -c "echo config missing >&2; exit 3"'], port: ['80'] }, 'none', runDirs);
    const h = await start(spec);
    const err = await backend.ready(h, spec, never).then(
      () => undefined,
      (e: unknown) => e as { code: string; details: { cause: string } },
    );
    expect(err?.code).toBe('BOOT_FAILED');
    expect(err?.details.cause).toBe('config missing');
    await backend.stop(h, spec, 'destroy', never);
    // A second boot in the same runDir that dies silently must not be blamed on the first one's words.
    const silent = { ...spec, options: { ...spec.options, exec: ['sh -c "exit 4"'] } };
    const h2 = await start(silent);
    const err2 = await backend.ready(h2, silent, never).then(
      () => undefined,
      (e: unknown) => e as { code: string; details: { cause: string } },
    );
    expect(err2?.code).toBe('BOOT_FAILED');
    expect(err2?.details.cause).toBe('no output');
    await backend.stop(h2, silent, 'destroy', never);
  });

  it('measures start call -> first HTTP byte for busybox httpd under crun (median of 20)', async () => {
    const spec = serviceSpec('jt5bench', 5, { rootfs: [busybox], exec: ['/bin/httpd -f -p 80 -h /www'], port: ['80'] }, 'none', runDirs);
    const samples: number[] = [];
    const startCalls: number[] = [];
    const stops: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const h = await backend.start(spec, never);
      startCalls.push(performance.now() - t0);
      await backend.ready(h, spec, never);
      await firstByte(spec.network.ip);
      samples.push(performance.now() - t0);
      const t1 = performance.now();
      await backend.stop(h, spec, 'destroy', never);
      stops.push(performance.now() - t1);
    }
    const med = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return (s[9]! + s[10]!) / 2;
    };
    const median = med(samples);
    console.log(
      `container (crun, busybox httpd) over 20: start->first byte median ${median.toFixed(1)} ms (min ${Math.min(...samples).toFixed(1)}, max ${Math.max(...samples).toFixed(1)}); ` +
        `start() alone median ${med(startCalls).toFixed(1)} ms; destroy median ${med(stops).toFixed(1)} ms (bridge ${BRIDGE})`,
    );
    expect(median).toBeLessThan(1000);
  });
});
