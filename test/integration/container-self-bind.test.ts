// The container backend with programs that bind their own port, against real crun: jitsu-preload.so
// bind-mounted into a glibc rootfs hands a self-binding server its pre-bound socket; "ready" is
// observed (the program took the socket over), a static program is not pre-bound and is ready once
// it listens. Bridge jt2b38, 10.201.38.0/24, client netns jt2-client38 (test/helpers/net-env.ts).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { createContainerBackend } from '../../src/backends/container/index.js';
import { errorCode, JitsuError } from '../../src/errors.js';
import { isLinkPassing } from '../../src/network/index.js';
import { createNetEnv, nstatCounter, type NetEnv } from '../helpers/net-env.js';
import { rootfs } from '../helpers/container-net.js';

const run = promisify(execFile);
const has = (cmd: string): boolean => ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, cmd)));
const why =
  process.getuid?.() !== 0
    ? 'needs root (netns, bridge, crun)'
    : !has('crun') || !has('curl') || !has('nstat')
      ? 'needs crun, curl and nstat'
      : !existsSync('build/Release/jitsu-activate') || !existsSync('build/Release/jitsu-preload.so')
        ? 'needs the native build (npm run build:native)'
        : '';
const never = new AbortController().signal;

describe.skipIf(why !== '')(`container backend: programs that bind their own port ${why}`, () => {
  let env: NetEnv;
  let nodeRoot = '';
  let busybox = '';
  let host = 10;
  const backend = createContainerBackend({ shutdownTimeoutMs: 2000 });
  const live: Array<[BackendHandle, ServiceSpec]> = [];

  function spec(service: string, options: Record<string, string[]>): ServiceSpec {
    env.track(service);
    return { service, backend: 'container', network: env.network(service, host++), mask: 'activate', options, runDir: join(env.runDir, service) };
  }
  async function start(s: ServiceSpec): Promise<BackendHandle> {
    const h = await backend.start(s, never);
    live.push([h, s]);
    return h;
  }
  const curl = (ip: string): Promise<{ stdout: string }> => env.inClient('curl', ['-sS', '--retry', '0', '--max-time', '10', `http://${ip}/`], 15_000);

  beforeAll(async () => {
    nodeRoot = rootfs('node');
    busybox = rootfs('busybox');
    env = await createNetEnv(38, { client: true });
  });
  afterAll(async () => {
    for (const [h, s] of live) await backend.stop(h, s, 'destroy', never).catch(() => undefined);
    await env?.cleanup();
  });

  it('a dynamic server binding its own port (node listen(80)) gets the pre-bound socket: a curl made while it starts is answered, 0 SYN retransmits', async () => {
    const server = `setTimeout(() => require('node:http').createServer((q, s) => s.end('self-bound ' + process.pid + '\\n')).listen(80), 400)`;
    const s = spec('jt2-c-self', { rootfs: [nodeRoot], exec: [`/usr/bin/node -e "${server}"`], port: ['80'] });
    const synBefore = await nstatCounter(env.clientNetns!, 'TcpExtTCPSynRetrans');
    const t0 = performance.now();
    const h = await start(s);
    const early = curl(s.network.ip); // the program is still in its 400 ms start: the kernel queues this
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    const readyMs = performance.now() - t0;
    expect((await early).stdout).toBe('self-bound 1\n');
    expect(await nstatCounter(env.clientNetns!, 'TcpExtTCPSynRetrans')).toBe(synBefore);
    expect(readyMs).toBeGreaterThan(350); // observed, not assumed: not before the program listened
    expect(readFileSync(join(s.runDir, 'activation', 'claims'), 'utf8')).toBe('tcp-80 1\n');
    // The program's own listen(80) kept the deep queue of the pre-bound socket (Node asks for 511).
    const { stdout } = await run('ip', ['netns', 'exec', `jitsu-${s.service}`, 'ss', '-ltnH', 'sport = :80']);
    expect(stdout.trim().split(/\s+/).slice(0, 3)).toEqual(['LISTEN', '0', '65535']);
  });

  it('a LISTEN_FDS-aware server (/srv/server.js) is ready once it serves the inherited socket', async () => {
    const s = spec('jt2-c-fds', { rootfs: [nodeRoot], exec: ['/usr/bin/node /srv/server.js'], port: ['80'], env: ['DELAY_MS=400', 'MESSAGE=from fds'] });
    const t0 = performance.now();
    const h = await start(s);
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    expect(performance.now() - t0).toBeGreaterThan(350);
    expect((await curl(s.network.ip)).stdout).toBe('from fds\n');
  });

  it('a static server (busybox httpd) is not pre-bound: the log says why, the link stays down until it listens, then it serves', async () => {
    const s = spec('jt2-c-static', { rootfs: [busybox], exec: ['/bin/sh -c "sleep 0.3; exec httpd -f -p 80 -h /www"'], port: ['80'] });
    const h = await start(s);
    expect(isLinkPassing(h.link!)).toBe(false);
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    expect(isLinkPassing(h.link!)).toBe(true);
    expect((await curl(s.network.ip)).stdout).toBe('hello from a jitsu container\n');
    expect(readFileSync(join(s.runDir, 'container.log'), 'utf8')).toMatch(/\/bin\/sh is statically linked.*port 80 not pre-bound/);
  });

  it('a server that exits during its boot fails ready() with BOOT_FAILED and its last log line', async () => {
    const s = spec('jt2-c-dies', { rootfs: [nodeRoot], exec: [`/usr/bin/node -e "setTimeout(() => { console.error('no config found'); process.exit(3); }, 200)"`], port: ['80'] });
    const h = await start(s);
    const err = await backend.ready(h, s, AbortSignal.timeout(10_000)).then(() => undefined, (e: unknown) => e);
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect((err as JitsuError).message).toMatch(/exited before it was ready: no config found/);
  });
});
