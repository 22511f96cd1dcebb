// precreate=on end to end: the jitsu daemon (dist/src/cli/main.js) keeps one container created ahead
// (crun create) for a stopped service on bridge jt5br5 (10.204.5.0/24); a DNS query starts that very
// container (same pid), an idle stop is followed by a new one created ahead, a daemon killed with
// SIGKILL and restarted keeps it (no second one) or removes it when the service is gone, and SIGTERM
// leaves no container (`crun list`), netns or link behind.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootfs } from '../helpers/container-net.js';
import { isAlive } from '../../src/backends/common/proc.js';
import { isLinkPassing } from '../../src/network/index.js';

const MAIN = 'dist/src/cli/main.js';
// DNS port derived from this test's subnet (10.204.5.x) so parallel helpers do not collide.
const PORT = 25205;
const IP = '10.204.5.2';
const SERVICE = 'jt5p1';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const why =
  process.getuid?.() !== 0
    ? 'needs root'
    : !has('crun')
      ? 'crun is not installed'
      : !existsSync(MAIN)
        ? `${MAIN} is not built (npm run build:ts)`
        : !existsSync('build/Release/jitsu-activate')
          ? 'jitsu-activate is not built'
          : '';

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// A killed container init may linger as a zombie for a moment: that is not alive.
const alive = (pid: number): boolean => isAlive(pid, undefined);

let log = '';

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; daemon log tail:\n${log.split('\n').slice(-15).join('\n')}`);
    await sleep(50);
  }
}

describe.skipIf(why !== '')(`precreate=on: containers created ahead, through the daemon ${why}`, () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  /** Every daemon this file started, so afterAll ends them all even after a failed step. */
  const daemons: ChildProcess[] = [];
  let busybox = '';
  const crunRoot = (): string => join(dir, 'state', 'run', SERVICE, 'crun');

  /** `crun list` of the service's crun root: [{ pid, status }]. */
  function containers(): { pid: number; status: string }[] {
    if (!existsSync(crunRoot())) return [];
    const rows = sh('crun', [`--root=${crunRoot()}`, 'list', '--format=json']);
    return (JSON.parse(rows || '[]') as { pid: number; status: string }[]).map(({ pid, status }) => ({ pid, status }));
  }
  const readState = (): string => {
    try {
      return readFileSync(join(dir, 'state', 'state.json'), 'utf8');
    } catch {
      return '';
    }
  };
  /**
   * The daemon records a created container once crun has made it: a kill before that record is the
   * window the container README documents, not what these tests are about.
   */
  const recorded = (): true | undefined => (/"standby":\s*true/.test(readState()) ? true : undefined);
  /** The pid of the one container waiting created, once there is exactly that. */
  const created = (): number | undefined => {
    const c = containers();
    return c.length === 1 && c[0]!.status === 'created' ? c[0]!.pid : undefined;
  };

  function args(services: string[]): string[] {
    return [
      MAIN,
      ...['-b', '127.0.0.1', '-l', String(PORT), '-f', '0.0.0.0', '--bridge', 'jt5br5', '--state', join(dir, 'state')],
      ...['--log-level', 'debug', '-d', '0', '-t', '1', '--sweep-interval', '0.2'],
      ...services,
    ];
  }
  const WITH = (): string => `name=${SERVICE},dns=pre.jt5.test,ip=${IP},backend=container,mask=none,rootfs=${busybox},exec=/bin/httpd -f -p 80 -h /www,port=80,precreate=on`;
  // Another service, never summoned: the config of a daemon that no longer has jt5p1.
  const WITHOUT = (): string => `name=jt5p2,dns=other.jt5.test,ip=10.204.5.3,backend=container,mask=none,rootfs=${busybox},exec=/bin/httpd -f -p 80 -h /www,port=80`;

  async function startDaemon(services: string[]): Promise<void> {
    const d = spawn(process.execPath, args(services), { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon = d;
    daemons.push(d);
    d.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    const from = log.length;
    await until('the daemon to be ready', () => log.slice(from).includes('jitsu ready'), 20_000);
  }

  async function killDaemon(signal: 'SIGKILL' | 'SIGTERM'): Promise<number | null> {
    const d = daemon!;
    if (d.exitCode !== null) return d.exitCode;
    const exited = new Promise<number | null>((r) => d.once('exit', (code) => r(code)));
    d.kill(signal);
    const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') throw new Error(`daemon did not exit on ${signal}`);
    return code;
  }

  /** A DNS query boots the service; curl gets the page; returns the pid the daemon saw ready. */
  async function summon(): Promise<number> {
    const from = log.length;
    expect(sh('dig', ['+short', '+time=10', '@127.0.0.1', '-p', String(PORT), 'pre.jt5.test']).trim()).toBe(IP);
    expect(sh('curl', ['-s', '--max-time', '5', `http://${IP}/`])).toBe('hello from a jitsu container\n');
    const m = await until('the ready line', () => new RegExp(`msg=ready service=${SERVICE} boot_ms=[\\d.]+ pid=(\\d+)`).exec(log.slice(from)) ?? undefined, 5000);
    return Number(m[1]);
  }

  /** The next container created ahead, after the idle stop of the one that served (pid `previous`). */
  async function nextCreated(previous: number): Promise<number> {
    return until('the idle stop and a new container created ahead', () => {
      const pid = created();
      return pid !== undefined && pid !== previous ? pid : undefined;
    }, 20_000);
  }

  beforeAll(async () => {
    busybox = rootfs('busybox');
    dir = mkdtempSync(join(tmpdir(), 'jt5-precreate-'));
    await startDaemon([WITH()]);
  });

  afterAll(async () => {
    for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    await sleep(300);
    // Belt and braces after a failed run: nothing of ours may stay.
    for (const service of [SERVICE, 'jt5p2']) {
      const root = join(dir, 'state', 'run', service, 'crun');
      try {
        execFileSync('crun', [`--root=${root}`, 'delete', '--force', `jitsu-${service}`], { stdio: 'ignore' });
      } catch {
        // none
      }
    }
    for (const cmd of ['netns del jitsu-jt5p1', 'netns del jitsu-jt5p2', 'link del jt5p1-v', 'link del jt5p2-v', 'link del jt5br5']) {
      try {
        execFileSync('ip', cmd.split(' '), { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  let pid = 0;

  it('creates the container ahead at daemon start; a DNS query starts that very container', async () => {
    const ahead = await until('the container created ahead', created, 15_000);
    // Created, not running: the veth stays off the bridge (a stopped service answers no ARP).
    expect(isLinkPassing('jt5p1-v')).toBe(false);
    pid = await summon();
    expect(pid).toBe(ahead);
    expect(containers()).toEqual([{ pid: ahead, status: 'running' }]);
  });

  it('after an idle stop the next container is created ahead again, and serves', async () => {
    const next = await nextCreated(pid);
    expect(alive(pid)).toBe(false);
    pid = await summon();
    expect(pid).toBe(next);
  });

  it('a daemon killed while a container waits created keeps it after a restart (no second one) and serves from it', async () => {
    const waiting = await nextCreated(pid);
    await until('the container recorded in state.json', recorded, 15_000);
    expect(await killDaemon('SIGKILL')).toBe(null);
    expect(created()).toBe(waiting);
    const from = log.length;
    await startDaemon([WITH()]);
    await until('the prepare call of the new daemon', () => log.slice(from).includes(`op=prepare service=${SERVICE}`), 15_000);
    expect(containers()).toEqual([{ pid: waiting, status: 'created' }]);
    pid = await summon();
    expect(pid).toBe(waiting);
  });

  it('SIGTERM removes the container created ahead: crun list is empty, no netns or link stays', async () => {
    const waiting = await nextCreated(pid);
    expect(await killDaemon('SIGTERM')).toBe(0);
    expect(containers()).toEqual([]);
    expect(alive(waiting)).toBe(false);
    expect(sh('ip', ['netns', 'list'])).not.toMatch(/jitsu-jt5p1/);
    expect(sh('ip', ['-br', 'link'])).not.toMatch(/^jt5(p1|br5)/m);
  });

  it('a daemon killed with a container created ahead, restarted without that service, removes it', async () => {
    await startDaemon([WITH()]);
    const waiting = await until('the container created ahead', created, 15_000);
    await until('the container recorded in state.json', recorded, 15_000);
    expect(await killDaemon('SIGKILL')).toBe(null);
    const from = log.length;
    await startDaemon([WITHOUT()]);
    await until('the orphan stopped', () => log.slice(from).includes(`msg="stopping service no longer configured" service=${SERVICE}`), 30_000);
    await until('the orphan container gone', () => containers().length === 0 || undefined, 30_000);
    expect(alive(waiting)).toBe(false);
    expect(await killDaemon('SIGTERM')).toBe(0);
    expect(containers()).toEqual([]);
    expect(sh('ip', ['netns', 'list'])).not.toMatch(/jitsu-jt5p[12]/);
  });
});
