/**
 * The process backend's socket activation for servers that bind their own port (jitsu-preload.so),
 * called directly with real namespaces: a curl made while the server starts is answered with no SYN
 * retransmitted, ready() resolves only once the server took its socket over, the server's children
 * see no activation environment, a command that dies first fails ready() with BOOT_FAILED and how it
 * ended. Bridge jt2b37, 10.201.37.0/24, client netns jt2-client37 (test/helpers/net-env.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { backend } from '../../src/backends/process/index.js';
import { errorCode, type JitsuError } from '../../src/errors.js';
import { isLinkPassing } from '../../src/network/index.js';
import { createNetEnv, nstatCounter, type NetEnv } from '../helpers/net-env.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const have = (p: string): boolean => existsSync(p);
const why =
  process.getuid?.() !== 0
    ? 'needs root'
    : !have(join(root, 'build/Release/jitsu-activate')) || !have(join(root, 'build/Release/jitsu-preload.so'))
      ? 'needs the native build (npm run build:native)'
      : !have('/usr/bin/python3') || !have('/bin/busybox') || !have('/usr/bin/curl') || !have('/usr/bin/nstat')
        ? 'needs python3, busybox-static, curl and nstat'
        : '';

describe.skipIf(why !== '')(`process backend: servers that bind their own port ${why}`, () => {
  let env: NetEnv;
  let host = 10;
  const live: Array<[BackendHandle, ServiceSpec]> = [];
  const spec = (service: string, options: Record<string, string[]>): ServiceSpec => {
    env.track(service);
    // The fixtures live in the run dir (root-only, under the host's /tmp): opt out of the confinement
    // (test/integration/confinement.test.ts covers these servers confined).
    const unconfined = { user: ['root'], private_tmp: ['false'] };
    return { service, backend: 'process', network: env.network(service, host++), mask: 'activate', options: { ...unconfined, ...options }, runDir: env.runDir };
  };
  const start = async (s: ServiceSpec): Promise<BackendHandle> => {
    const h = await backend.start(s, AbortSignal.timeout(10_000));
    live.push([h, s]);
    return h;
  };
  const curl = (ip: string): Promise<{ stdout: string }> => env.inClient('curl', ['-sS', '--retry', '0', '--max-time', '10', `http://${ip}/`], 15_000);

  beforeAll(async () => {
    env = await createNetEnv(37, { client: true });
    writeFileSync(join(env.runDir, 'index.html'), 'hello from python\n');
    // After it serves, the server runs a child: it must see neither LISTEN_* nor the preload library.
    writeFileSync(
      join(env.runDir, 'server.cjs'),
      `const { execFileSync } = require('node:child_process');
require('node:http').createServer((q, s) => s.end('hello from node\\n')).listen(80, () =>
  console.log('child env: ' + execFileSync('/bin/sh', ['-c', 'echo "[$LISTEN_FDS][$LISTEN_PID][$LD_PRELOAD][$JITSU_READY_REPORT]"']).toString().trim()));
`,
    );
  });
  afterAll(async () => {
    for (const [h, s] of live) await backend.stop(h, s, 'destroy', AbortSignal.timeout(5000)).catch(() => undefined);
    await env?.cleanup();
  });

  it.each([
    ['--bind 0.0.0.0 (IPv4)', 'jt2-sb-py4', 'python3 -m http.server --bind 0.0.0.0 80'],
    ['default bind (dual-stack ::)', 'jt2-sb-py6', 'python3 -m http.server 80'],
  ])('python http.server %s: a curl made while it starts is answered, 0 SYN retransmits, ready once it took the socket', async (_what, service, exec) => {
    const s = spec(service, { exec: [exec], port: ['80'], cwd: [env.runDir] });
    const synBefore = await nstatCounter(env.clientNetns!, 'TcpExtTCPSynRetrans');
    const h = await start(s);
    const early = curl(s.network.ip); // python is still importing: the pre-bound socket queues this
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    // Observed, not assumed: python itself reported the takeover, and owns the listening socket.
    expect(readFileSync(join(env.runDir, `${service}.claims`), 'utf8')).toBe(`tcp-80 ${h.pid}\n`);
    const { stdout } = await run('ip', ['netns', 'exec', `jitsu-${service}`, 'ss', '-ltnpH', 'sport = :80']);
    expect(stdout).toMatch(new RegExp(`^LISTEN\\s+0\\s+65535\\s.*"python3",pid=${h.pid},`)); // its listen(5) kept the deep queue
    expect((await early).stdout).toBe('hello from python\n');
    expect(await nstatCounter(env.clientNetns!, 'TcpExtTCPSynRetrans')).toBe(synBefore);
  });

  it("node's listen(80) serves; the server's own children get a clean environment", async () => {
    const s = spec('jt2-sb-node', { exec: [`${process.execPath} ${join(env.runDir, 'server.cjs')}`], port: ['80'] });
    const h = await start(s);
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    expect((await curl(s.network.ip)).stdout).toBe('hello from node\n');
    await expect.poll(() => readFileSync(join(env.runDir, 'jt2-sb-node.log'), 'utf8'), { timeout: 5000 }).toContain('child env: [][][][]');
  });

  it('ready() waits for the server, not for the launcher: a server that binds 500 ms late (forked by sh) is ready after that', async () => {
    const s = spec('jt2-sb-late', { exec: ['sh -c "sleep 0.5; python3 -m http.server 80; true"'], port: ['80'], cwd: [env.runDir] });
    const t0 = performance.now();
    const h = await start(s);
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    expect(performance.now() - t0).toBeGreaterThan(450);
    expect((await curl(s.network.ip)).stdout).toBe('hello from python\n');
  });

  it('a LISTEN_FDS-aware server (the demo) is ready once it serves the inherited socket', async () => {
    const demo = join(root, 'dist/src/demo/http.js');
    const s = spec('jt2-sb-demo', { exec: [`${process.execPath} ${demo} --delay-ms 300 --message demo-fds`], port: ['80'] });
    const t0 = performance.now();
    const h = await start(s);
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    expect(performance.now() - t0).toBeGreaterThan(250);
    expect((await curl(s.network.ip)).stdout).toBe('demo-fds\n');
  });

  it('a static server (busybox httpd) is not pre-bound: its log says why, the link stays down until it listens', async () => {
    const s = spec('jt2-sb-static', { exec: [`/bin/busybox httpd -f -p 80 -h ${env.runDir}`], port: ['80'] });
    const h = await start(s);
    expect(isLinkPassing(h.link!)).toBe(false);
    await backend.ready(h, s, AbortSignal.timeout(10_000));
    expect(isLinkPassing(h.link!)).toBe(true);
    expect((await curl(s.network.ip)).stdout).toBe('hello from python\n');
    expect(readFileSync(join(env.runDir, 'jt2-sb-static.log'), 'utf8')).toMatch(/^jitsu: \/bin\/busybox is statically linked.*port 80 not pre-bound/);
  });

  it.each([
    ['exits at once', 'sh -c "exit 3"', { exitCode: 3, exitSignal: null }, /exited with status 3/],
    ['exits 200 ms after starting', 'sh -c "echo giving up >&2; sleep 0.2; exit 4"', { exitCode: 4, exitSignal: null }, /exited with status 4.*giving up/],
    ['is killed by a signal', "sh -c 'kill -TERM $$'", { exitCode: null, exitSignal: 15 }, /killed by signal 15/],
  ])('a command that %s fails ready() with BOOT_FAILED, how it ended and its last log lines', async (_what, exec, ended, message) => {
    const s = spec(`jt2-sb-dies${host}`, { exec: [exec], port: ['80'] });
    const h = await start(s);
    const err = (await backend.ready(h, s, AbortSignal.timeout(10_000)).then(() => undefined, (e: unknown) => e)) as JitsuError;
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect(err.message).toMatch(message);
    expect(err.details).toMatchObject(ended);
  });
});
