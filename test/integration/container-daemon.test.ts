// End to end: the jitsu daemon (dist/src/cli/main.js) with two container services on bridge jt5br1
// (10.204.3.0/24): a DNS query boots the container, curl gets the page, an idle service is stopped,
// a restarted daemon adopts a running container, and SIGTERM leaves no bridge, veth, netns or container behind.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootfs } from '../helpers/container-net.js';
import { isLinkPassing } from '../../src/network/index.js';

const MAIN = 'dist/src/cli/main.js';
// DNS port derived from this area's subnet (10.204.x) so parallel helpers do not collide.
const PORT = 25204;
const why =
  process.getuid?.() !== 0 ? 'needs root' : !existsSync(MAIN) ? `${MAIN} is not built (npx tsc -p .)` : !existsSync('build/Release/jitsu-activate') ? 'jitsu-activate is not built' : '';

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
const links = (): string => sh('ip', ['-br', 'link']).split('\n').filter((l) => /^jt5(br1|e3|n3)/.test(l)).join('\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The running daemon's stderr, for waits and for failure messages. */
let log = '';

async function until(what: string, f: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; daemon log tail:\n${log.split("\n").slice(-15).join("\n")}`);
    await sleep(50);
  }
}

describe.skipIf(why !== '')(`jitsu daemon with container services ${why}`, () => {
  let dir = '';
  let daemon: ChildProcess | undefined;

  let args: string[] = [];
  async function startDaemon(): Promise<void> {
    const d = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon = d;
    d.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    const from = log.length;
    await until('the daemon to be ready', () => log.slice(from).includes('jitsu ready'), 20_000);
  }

  beforeAll(async () => {
    const busybox = rootfs('busybox');
    const nodeRoot = rootfs('node');
    dir = mkdtempSync(join(tmpdir(), 'jt5-daemon-'));
    args = [
      MAIN,
      ...['-b', '127.0.0.1', '-l', String(PORT), '-f', '0.0.0.0', '--bridge', 'jt5br1', '--state', join(dir, 'state')],
      ...['--log-level', 'debug', '-t', '2', '--sweep-interval', '1'],
      `name=jt5e3,dns=www.jt5.test,ip=10.204.3.2,backend=container,mask=none,rootfs=${busybox},exec=/bin/httpd -f -p 80 -h /www,port=80`,
      `name=jt5n3,dns=node.jt5.test,ip=10.204.3.3,backend=container,rootfs=${nodeRoot},exec=/usr/bin/node /srv/server.js,port=80,env=DELAY_MS=300`,
    ];
    await startDaemon();
  });

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGKILL');
      await sleep(200);
    }
    // Belt and braces after a failed run: nothing of ours may stay.
    for (const name of ['netns del jitsu-jt5e3', 'netns del jitsu-jt5n3', 'link del jt5e3-v', 'link del jt5n3-v', 'link del jt5br1-ka', 'link del jt5br1']) {
      try {
        execFileSync('ip', name.split(' '), { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a DNS query boots the container; curl gets the page', async () => {
    expect(sh('dig', ['+short', '+time=5', '@127.0.0.1', '-p', String(PORT), 'www.jt5.test']).trim()).toBe('10.204.3.2');
    expect(sh('curl', ['-s', '--max-time', '5', 'http://10.204.3.2/'])).toBe('hello from a jitsu container\n');
    await until('the ready log line', () => /msg=ready service=jt5e3 boot_ms=/.test(log), 5000);
  });

  it('socket activation: ready means serving, so the answer waits for the late server and the first request is served', async () => {
    // The server starts listening 300 ms late (DELAY_MS); its pre-bound socket queues SYNs meanwhile.
    const t = performance.now();
    expect(sh('dig', ['+short', '+time=5', '@127.0.0.1', '-p', String(PORT), 'node.jt5.test']).trim()).toBe('10.204.3.3');
    expect(performance.now() - t).toBeGreaterThanOrEqual(200);
    expect(sh('curl', ['-s', '--max-time', '5', 'http://10.204.3.3/'])).toBe('hello from a jitsu container\n');
    await until('the booting log line', () => /msg=booting service=jt5n3 backend=container ip=10.204.3.3 mask=activate/.test(log), 5000);
  });

  it('a daemon killed with SIGKILL and restarted adopts the running container instead of booting another', async () => {
    const pid = /msg=ready service=jt5e3 boot_ms=[\d.]+ pid=(\d+)/.exec(log)?.[1];
    expect(pid).toBeDefined();
    // Adoption works from state.json: kill only once the running service is on disk.
    const stateFile = join(dir, 'state', 'state.json');
    await until('jt5e3 in state.json', () => existsSync(stateFile) && readFileSync(stateFile, 'utf8').includes(`"pid": ${pid}`), 5000);
    const killed = new Promise<void>((r) => daemon!.once('exit', () => r()));
    daemon!.kill('SIGKILL');
    await killed;
    const from = log.length;
    await startDaemon();
    await until('adoption', () => log.slice(from).includes(`msg="adopted running service" service=jt5e3 pid=${pid}`), 5000);
    expect(sh('curl', ['-s', '--max-time', '5', 'http://10.204.3.2/'])).toBe('hello from a jitsu container\n');
    expect(log.slice(from)).not.toMatch(/msg=booting service=jt5e3/);
  });

  it('idle services are stopped (veth off the bridge), and SIGTERM cleans everything up', async () => {
    await until('idle stop', () => /idle, stopping" service=jt5e3/.test(log) && /op=stop service=jt5e3 ms=[\d.]+ ok=true/.test(log), 20_000);
    expect(links()).toMatch(/jt5e3-v/);
    expect(isLinkPassing('jt5e3-v')).toBe(false);
    const exited = new Promise<number | null>((r) => daemon!.once('exit', (code) => r(code)));
    daemon!.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(links()).toBe('');
    expect(sh('ip', ['netns', 'list'])).not.toMatch(/jitsu-jt5[en]3/);
    for (const service of ['jt5e3', 'jt5n3']) {
      const crunRoot = join(dir, 'state', 'run', service, 'crun');
      expect(existsSync(crunRoot) ? readdirSync(crunRoot) : []).toEqual([]);
    }
  });
});
