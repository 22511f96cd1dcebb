/**
 * Jitsu operated as a system daemon, end to end with the real CLI: sd_notify on real AF_UNIX
 * datagram sockets (abstract and path), reload on SIGHUP and `jitsu reload` (added, removed,
 * changed and unchanged services; a broken file), the control commands against a running daemon
 * and without one, a stale control socket, --log-format json, the journal's log style, the systemd
 * unit (systemd-analyze verify), the example config and setup.sh --install-service.
 * Subnets 10.210.N.0/24, interface prefix jop (see test/helpers/daemon.ts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import type { RuntimeStatus } from '../../src/services/runtime.js';
import { CLI, DEMO_HTTP, ROOT, cleanupNetwork, curl, dig, freePort, haveCommand, isRoot, pidsMatching } from '../helpers/daemon.js';

const run = promisify(execFile);
const canRun = isRoot() && haveCommand('dig') && haveCommand('curl') && haveCommand('python3') && existsSync(CLI);
const why = canRun ? '' : '(needs root, dig, curl, python3 and a build: npm run build:ts)';
const PREFIX = `jop${process.pid.toString(36).slice(-3)}`;
let seq = 0;

function unique(): { id: string; bridge: string; subnet: string } {
  seq++;
  return { id: `${PREFIX}${seq}`, bridge: `${PREFIX}b${seq}`, subnet: `10.210.${(process.pid % 40) * 6 + seq}` };
}

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jitsu-operate-'));
  tempDirs.push(dir);
  return dir;
}

interface ServiceDef {
  name: string;
  ip: string;
  message?: string;
}

function serviceEntry(s: ServiceDef): Record<string, string | number> {
  return { name: s.name, dns: `${s.name}.jitsu.test`, ip: s.ip, port: 80, exec: `${process.execPath} ${DEMO_HTTP} --port 80 --message ${s.message ?? `hello-${s.name}`}` };
}

/** A config file (JSON is YAML) as the daemon and a reload read it. */
function writeConfig(path: string, base: Record<string, unknown>, services: readonly ServiceDef[], extra: Record<string, unknown> = {}): void {
  writeFileSync(path, JSON.stringify({ ...base, ...extra, services: services.map(serviceEntry) }, null, 1));
}

/** The real CLI as a child, started with --config FILE. */
interface Jitsu {
  child: ChildProcess;
  port: number;
  stateDir: string;
  configPath: string;
  base: Record<string, unknown>;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}
const running: Jitsu[] = [];

async function startJitsu(opts: { bridge: string; services: ServiceDef[]; env?: Record<string, string>; args?: string[]; stateDir?: string; shell?: string; waitReady?: boolean }): Promise<Jitsu> {
  const port = await freePort();
  const dir = tempDir();
  const stateDir = opts.stateDir ?? join(dir, 'state');
  const configPath = join(dir, 'jitsu.yaml');
  const base = { bind: '127.0.0.1', port, forwarder: '0.0.0.0', bridge: opts.bridge, state: stateDir, 'log-level': 'debug' };
  writeConfig(configPath, base, opts.services);
  const args = [CLI, '--config', configPath, ...(opts.args ?? [])];
  // `shell`: a prefix run by sh before exec'ing node (to compute JOURNAL_STREAM for the very stderr node gets).
  const child = opts.shell
    ? spawn('/bin/sh', ['-c', `${opts.shell} exec "$0" "$@"`, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitFor = (pattern: RegExp, timeoutMs = 20_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pattern.test(output)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${pattern}:\n${output.slice(-4000)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const j: Jitsu = { child, port, stateDir, configPath, base, output: () => output, waitFor, exited };
  running.push(j);
  if (opts.waitReady !== false) await waitFor(/jitsu ready/);
  return j;
}

async function stopJitsu(j: Jitsu, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (j.child.exitCode === null && j.child.signalCode === null) j.child.kill(signal);
  const timer = setTimeout(() => j.child.kill('SIGKILL'), 30_000);
  const code = await j.exited;
  clearTimeout(timer);
  return code;
}

/** `jitsu ARGS` with the real CLI: exit code, stdout, stderr. */
async function jitsu(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A real AF_UNIX datagram listener (python3), collecting every notification it receives. */
interface NotifyListener {
  address: string;
  messages: string[];
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  close(): void;
}
const listeners: NotifyListener[] = [];

const LISTENER = `
import json, socket, sys
address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + address[1:] if address.startswith('@') else address)
print('"listening"', flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

async function notifyListener(address: string): Promise<NotifyListener> {
  const child = spawn('python3', ['-c', LISTENER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      messages.push(JSON.parse(buffered.slice(0, nl)) as string);
      buffered = buffered.slice(nl + 1);
    }
    for (const w of waiters) w();
  });
  const waitFor = (pattern: RegExp, timeoutMs = 20_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = messages.find((m) => pattern.test(m));
        if (hit === undefined) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no notification matching ${pattern}; got ${JSON.stringify(messages.slice(-20))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const listener: NotifyListener = { address, messages, waitFor, close: () => void child.kill('SIGKILL') };
  listeners.push(listener);
  await waitFor(/^listening$/, 10_000);
  return listener;
}

/** An HTTP/1.1 keep-alive connection: several requests over one TCP socket. */
class KeepAlive {
  private received = '';
  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (this.received += chunk));
  }
  static open(ip: string): Promise<KeepAlive> {
    return new Promise((resolve, reject) => {
      const socket = connect(80, ip, () => resolve(new KeepAlive(socket)));
      socket.once('error', reject);
    });
  }
  /** Sends one request and resolves with the body of its response. */
  async get(host: string): Promise<string> {
    const before = this.received.length;
    this.socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`);
    await expect.poll(() => /\r\n\r\n[\s\S]*\n/.test(this.received.slice(before)), { timeout: 10_000, interval: 20 }).toBe(true);
    return this.received.slice(before).split('\r\n\r\n')[1] ?? '';
  }
  get closed(): boolean {
    return this.socket.destroyed || this.socket.readyState !== 'open';
  }
  close(): void {
    this.socket.destroy();
  }
}

async function statusOf(stateDir: string): Promise<RuntimeStatus[]> {
  return (await controlRequest(stateDir, { command: 'status' })).services;
}

afterEach(async () => {
  for (const j of running.splice(0)) await stopJitsu(j);
  for (const l of listeners.splice(0)) l.close();
});
afterAll(async () => {
  if (canRun) await cleanupNetwork(PREFIX);
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!canRun)(`sd_notify ${why}`, () => {
  it('abstract socket: READY=1 once DNS answers, STATUS= on changes, WATCHDOG=1 every WATCHDOG_USEC/2, RELOADING=1 then READY=1, STOPPING=1; services do not inherit NOTIFY_SOCKET', async () => {
    const { id, bridge, subnet } = unique();
    const listener = await notifyListener(`@${PREFIX}-notify-${seq}`);
    const a = { name: `${id}a`, ip: `${subnet}.10` };
    const j = await startJitsu({ bridge, services: [a], env: { NOTIFY_SOCKET: listener.address, WATCHDOG_USEC: '200000' }, waitReady: false });
    const ready = await listener.waitFor(/^READY=1$/m);
    // READY=1 means DNS answers now.
    expect((await dig(j.port, `${a.name}.jitsu.test`)).answers.join('\n')).toContain(a.ip);
    expect(ready).toMatch(/^STATUS=1 service: 0 running, 0 booting, 0 failed$/m);
    await listener.waitFor(/^STATUS=1 service: 1 running, 0 booting, 0 failed$/m, 5_000);
    // 100 ms pings: in about a second, several.
    await expect.poll(() => listener.messages.filter((m) => m === 'WATCHDOG=1\n').length, { timeout: 5_000 }).toBeGreaterThanOrEqual(5);

    const [service] = await statusOf(j.stateDir);
    expect(service!.pid).toBeGreaterThan(0);
    const environ = readFileSync(`/proc/${service!.pid}/environ`, 'utf8');
    expect(environ).not.toContain('NOTIFY_SOCKET');
    expect(environ).not.toContain('WATCHDOG_USEC');

    const seen = listener.messages.length;
    expect((await jitsu('reload', '--state', j.stateDir)).code).toBe(0);
    await expect.poll(() => listener.messages.slice(seen).some((m) => /^READY=1$/m.test(m))).toBe(true);
    const afterReload = listener.messages.slice(seen).filter((m) => m !== 'WATCHDOG=1\n');
    expect(afterReload[0]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\n/);
    expect(afterReload[1]).toMatch(/^READY=1\nSTATUS=1 service: 1 running/);

    expect(await stopJitsu(j)).toBe(0);
    await listener.waitFor(/^STOPPING=1$/m);
  });

  it('path socket: READY=1 and STOPPING=1 arrive; no WATCHDOG=1 when WATCHDOG_PID names another process', async () => {
    const { id, bridge, subnet } = unique();
    const path = join(tempDir(), 'notify.sock');
    const listener = await notifyListener(path);
    const j = await startJitsu({ bridge, services: [{ name: `${id}a`, ip: `${subnet}.10` }], env: { NOTIFY_SOCKET: path, WATCHDOG_USEC: '100000', WATCHDOG_PID: '1' }, waitReady: false });
    await listener.waitFor(/^READY=1$/m);
    await new Promise((r) => setTimeout(r, 300));
    expect(await stopJitsu(j)).toBe(0);
    await listener.waitFor(/^STOPPING=1$/m);
    expect(listener.messages).not.toContain('WATCHDOG=1\n');
  });
});

describe.skipIf(!canRun)(`reload ${why}`, () => {
  it('adds, removes and restarts changed services; an unchanged running one keeps its process and an open connection', async () => {
    const { id, bridge, subnet } = unique();
    const keep = { name: `${id}k`, ip: `${subnet}.10` };
    const change = { name: `${id}c`, ip: `${subnet}.11` };
    const remove = { name: `${id}r`, ip: `${subnet}.12` };
    const add = { name: `${id}n`, ip: `${subnet}.13` };
    const j = await startJitsu({ bridge, services: [keep, change, remove] });
    for (const s of [keep, change, remove]) expect((await dig(j.port, `${s.name}.jitsu.test`)).answers.join('\n')).toContain(s.ip);
    await expect.poll(async () => (await statusOf(j.stateDir)).filter((s) => s.state === 'ready').length, { timeout: 15_000 }).toBe(3);
    const keptPid = (await statusOf(j.stateDir)).find((s) => s.service === keep.name)!.pid;
    const connection = await KeepAlive.open(keep.ip);
    try {
      expect(await connection.get(keep.ip)).toContain(`hello-${keep.name}`);

      writeConfig(j.configPath, j.base, [keep, { ...change, message: `hello-${change.name}-v2` }, add]);
      const reloaded = await jitsu('reload', '--state', j.stateDir);
      expect(reloaded.stderr).toBe('');
      expect(reloaded.code).toBe(0);
      expect(reloaded.stdout).toContain(`added ${add.name}; removed ${remove.name}; restarted ${change.name}; 1 unchanged`);

      // Unchanged: same process, and the connection opened before the reload still works.
      const after = await statusOf(j.stateDir);
      expect(after.find((s) => s.service === keep.name)).toMatchObject({ state: 'ready', pid: keptPid, bootCount: 1 });
      expect(connection.closed).toBe(false);
      expect(await connection.get(keep.ip)).toContain(`hello-${keep.name}`);
    } finally {
      connection.close();
    }

    // Removed: not ours any more, its process and namespace gone.
    expect((await dig(j.port, `${remove.name}.jitsu.test`)).status).not.toBe('NOERROR');
    await expect.poll(() => pidsMatching(`hello-${remove.name}`), { timeout: 5_000 }).toHaveLength(0);
    expect(existsSync(`/run/netns/jitsu-${remove.name}`)).toBe(false);
    // Changed: the old process is gone; the next query boots the new definition.
    expect(await pidsMatching(`hello-${change.name}`)).toHaveLength(0);
    expect((await dig(j.port, `${change.name}.jitsu.test`)).answers.join('\n')).toContain(change.ip);
    expect(await curl(`http://${change.ip}/`)).toContain(`hello-${change.name}-v2`);
    // Added: answers and boots, its namespace prepared like at start-up.
    expect((await dig(j.port, `${add.name}.jitsu.test`)).answers.join('\n')).toContain(add.ip);
    expect(await curl(`http://${add.ip}/`)).toContain(`hello-${add.name}`);
    expect(j.output()).toMatch(/msg=reloaded added=\S+n removed=\S+r changed=\S+c unchanged=1/);
  });

  it('a broken file is refused with one log line naming the key, and the old configuration keeps serving; restart-only options say so and keep their value; live ones apply', async () => {
    const { id, bridge, subnet } = unique();
    const a = { name: `${id}a`, ip: `${subnet}.10` };
    const j = await startJitsu({ bridge, services: [a] });
    expect((await dig(j.port, `${a.name}.jitsu.test`)).answers.join('\n')).toContain(a.ip);
    const pid = (await statusOf(j.stateDir))[0]!.pid;

    writeConfig(j.configPath, j.base, [a], { ttl: -5 });
    j.child.kill('SIGHUP');
    await j.waitFor(/reload refused/);
    const refusals = j.output().split('\n').filter((l) => l.includes('reload refused'));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toContain('--ttl: -5 is out of range');
    const viaCommand = await jitsu('reload', '--state', j.stateDir);
    expect(viaCommand.code).toBe(1);
    expect(viaCommand.stderr).toMatch(/^jitsu reload: reload refused, the running configuration keeps serving: --ttl: -5 is out of range/);
    const answer = await dig(j.port, `${a.name}.jitsu.test`);
    expect(answer.answers.join('\n')).toContain(a.ip);
    expect(answer.answers[0]).toMatch(/\s60\s+IN\s+A\s/);
    expect((await statusOf(j.stateDir))[0]!.pid).toBe(pid);

    // --port cannot change live: one line, old value kept; --ttl can.
    const otherPort = await freePort();
    writeConfig(j.configPath, j.base, [a], { port: otherPort, ttl: 7 });
    const reloaded = await jitsu('reload', '--state', j.stateDir);
    expect(reloaded.code).toBe(0);
    expect(reloaded.stdout).toContain(`not applied (needs a restart): --port stays ${j.port} (file says ${otherPort})`);
    expect(reloaded.stdout).toMatch(/options applied: .*--ttl/);
    expect(j.output().split('\n').filter((l) => l.includes('option=--port'))).toHaveLength(1);
    expect((await dig(j.port, `${a.name}.jitsu.test`)).answers[0]).toMatch(/\s7\s+IN\s+A\s/);
    expect((await statusOf(j.stateDir))[0]!.pid).toBe(pid);
  });
});

describe.skipIf(!canRun)(`control commands ${why}`, () => {
  it('status, start, stop, reload and check against a running daemon', async () => {
    const { id, bridge, subnet } = unique();
    const a = { name: `${id}a`, ip: `${subnet}.10` };
    const b = { name: `${id}b`, ip: `${subnet}.11` };
    const j = await startJitsu({ bridge, services: [a, b] });

    const before = await jitsu('status', '--state', j.stateDir);
    expect(before.code).toBe(0);
    const lines = before.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^jitsu \\S+, up \\d+ s; DNS on 127\\.0\\.0\\.1:${j.port}`));
    expect(lines[1]).toMatch(/^SERVICE\s+STATE\s+BACKEND\s+IP\s+BOOTS\s+LAST BOOT MS\s+IDLE S\s+LAST ERROR$/);
    expect(lines[2]).toMatch(new RegExp(`^${a.name}\\s+stopped\\s+process\\s+${a.ip.replace(/\./g, '\\.')}\\s+0\\s+-\\s+-\\s+-$`));
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(120);

    const started = await jitsu('start', a.name, '--state', j.stateDir);
    expect(started).toMatchObject({ code: 0, stderr: '' });
    expect(started.stdout).toMatch(new RegExp(`^${a.name}: started \\(running, pid \\d+, boot [\\d.]+ ms\\)`));
    expect(await curl(`http://${a.ip}/`)).toContain(`hello-${a.name}`);
    expect((await jitsu('status', '--state', j.stateDir)).stdout).toMatch(new RegExp(`${a.name}\\s+running\\s+process\\s+\\S+\\s+1\\s+[\\d.]+\\s+[\\d.]+\\s+-`));

    const unknown = await jitsu('start', 'nosuch', '--state', j.stateDir);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`jitsu start: no service named "nosuch": the configured ones are ${a.name}, ${b.name}`);
    expect((await jitsu('start', '--state', j.stateDir)).code).toBe(2);

    const stopped = await jitsu('stop', a.name, '--state', j.stateDir);
    expect(stopped).toMatchObject({ code: 0, stderr: '' });
    expect(stopped.stdout).toMatch(new RegExp(`^${a.name}: stopped \\(stopped\\)`));
    await expect.poll(() => pidsMatching(`hello-${a.name}`), { timeout: 5_000 }).toHaveLength(0);

    const reloaded = await jitsu('reload', '--state', j.stateDir);
    expect(reloaded.code).toBe(0);
    expect(reloaded.stdout).toContain('reloaded: added none; removed none; restarted none; 2 unchanged');

    // The socket is root's: mode 0600.
    expect((await run('stat', ['-c', '%a', join(j.stateDir, 'control.sock')])).stdout.trim()).toBe('600');
    // A second daemon on the same state dir does not start next to it.
    const second = await startJitsu({ bridge: `${bridge}x`, services: [{ name: `${id}z`, ip: `${subnet}.20` }], stateDir: j.stateDir, waitReady: false });
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`state dir ${j.stateDir} is in use by a running jitsu daemon`);
    expect((await jitsu('status', '--state', j.stateDir)).code).toBe(0);
  });

  it('check validates without starting: exit 0 and a summary, or exit 2 and the ConfigError line', async () => {
    const dir = tempDir();
    const good = join(dir, 'good.yaml');
    writeConfig(good, { port: 5399, state: join(dir, 'state') }, [{ name: 'svc', ip: '10.210.250.10' }]);
    const ok = await jitsu('check', '--config', good);
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(ok.stdout).toBe(`${good}: valid: 1 service (svc); DNS on 127.0.0.1 port 5399; state ${join(dir, 'state')}\n`);
    expect(existsSync(join(dir, 'state'))).toBe(false);
    const bad = join(dir, 'bad.yaml');
    writeConfig(bad, { port: 5399, colour: 'red' }, []);
    const refused = await jitsu('check', '--config', bad);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`jitsu check: colour: unknown key in ${bad}: use the long flag names (see jitsu --help) and services:\n`);
    expect((await jitsu('check')).code).toBe(2);
  });

  it('without a daemon: a clear error and exit 1; a stale socket of a killed daemon is named, and a new daemon replaces it', async () => {
    const empty = tempDir();
    for (const command of [['status'], ['reload'], ['start', 'x'], ['stop', 'x']]) {
      const result = await jitsu(...command, '--state', empty);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`jitsu ${command[0]}: no jitsu daemon is running with state dir ${empty} (no control socket at ${empty}/control.sock)\n`);
    }

    const { id, bridge, subnet } = unique();
    const a = { name: `${id}a`, ip: `${subnet}.10` };
    const first = await startJitsu({ bridge, services: [a] });
    expect((await jitsu('start', a.name, '--state', first.stateDir)).code).toBe(0);
    const pid = (await statusOf(first.stateDir))[0]!.pid;
    await stopJitsu(first, 'SIGKILL');
    expect(existsSync(join(first.stateDir, 'control.sock'))).toBe(true);
    const stale = await jitsu('status', '--state', first.stateDir);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('is stale: the daemon that made it is gone');

    const second = await startJitsu({ bridge, services: [a], stateDir: first.stateDir });
    expect(second.output()).toContain('replacing the stale control socket');
    expect((await statusOf(second.stateDir))[0]).toMatchObject({ state: 'ready', pid });
  });
});

describe.skipIf(!canRun)(`log format ${why}`, () => {
  it('--log-format json: every line is a JSON object with ts, level and msg', async () => {
    const { id, bridge, subnet } = unique();
    const j = await startJitsu({ bridge, services: [{ name: `${id}a`, ip: `${subnet}.10` }], args: ['--log-format', 'json'], waitReady: false });
    await j.waitFor(/"msg":"jitsu ready"/);
    expect((await jitsu('status', '--state', j.stateDir)).code).toBe(0); // logs a debug line
    expect(await stopJitsu(j)).toBe(0);
    const lines = j.output().trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.some((l) => l.includes('"msg":"control command"'))).toBe(true);
    for (const line of lines) {
      const record = JSON.parse(line) as Record<string, unknown>;
      expect(record).toMatchObject({ level: expect.any(String), msg: expect.any(String), ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    }
  });

  it('stderr that is the journal stream (JOURNAL_STREAM = its dev:inode): no ts=, a <N> priority per line; another stream keeps ts=', async () => {
    const { id, bridge, subnet } = unique();
    const services = [{ name: `${id}a`, ip: `${subnet}.10` }];
    const j = await startJitsu({ bridge, services, shell: 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM;' });
    expect((await jitsu('status', '--state', j.stateDir)).code).toBe(0); // logs a debug line
    expect(await stopJitsu(j)).toBe(0);
    const lines = j.output().trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^<[3467]>level=(debug|info|warn|error) msg=/);
    expect(lines.find((l) => l.includes('msg="jitsu ready"'))).toMatch(/^<6>/);
    expect(lines.find((l) => l.includes('level=debug'))).toMatch(/^<7>/);

    const { bridge: other } = unique();
    const plain = await startJitsu({ bridge: other, services, env: { JOURNAL_STREAM: '1:1' } });
    expect(await stopJitsu(plain)).toBe(0);
    for (const line of plain.output().trimEnd().split('\n')) expect(line).toMatch(/^ts=\S+ level=/);
  });
});

describe('systemd unit and example config', () => {
  const unit = join(ROOT, 'packaging/systemd/jitsu.service');
  const example = join(ROOT, 'packaging/jitsu.yaml');

  it.skipIf(!haveCommand('systemd-analyze'))('passes systemd-analyze verify and says what the daemon needs (skipped without systemd-analyze: ./scripts/setup.sh installs the systemd package)', async () => {
    const { stderr } = await run('systemd-analyze', ['verify', unit]);
    expect(stderr).toBe('');
    const text = readFileSync(unit, 'utf8');
    for (const line of ['Type=notify', 'NotifyAccess=main', 'ExecStart=/usr/local/bin/jitsu --config /etc/jitsu/jitsu.yaml', 'ExecReload=/bin/kill -HUP $MAINPID', 'KillMode=process', 'Restart=on-failure', 'StateDirectory=jitsu']) {
      expect(text.split('\n')).toContain(line);
    }
    expect(text).toMatch(/^WatchdogSec=\d+$/m);
    const caps = /^CapabilityBoundingSet=(.*)$/m.exec(text)![1]!.split(' ');
    expect(caps).toEqual(expect.arrayContaining(['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_KILL', 'CAP_SETUID', 'CAP_SETGID']));
    // Each capability is justified in a comment.
    for (const cap of caps) expect(text).toMatch(new RegExp(`^#.*${cap}\\b`, 'm'));
  });

  it.skipIf(!existsSync(CLI))('the example config passes jitsu check', async () => {
    const result = await jitsu('check', '--config', example);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain('valid: 1 service (hello)');
  });

  it.skipIf(!canRun)('setup.sh --install-service installs unit and config idempotently, keeps an edited config, and --uninstall-service removes them', async () => {
    const dir = tempDir();
    const env = { ...process.env, JITSU_BIN_DIR: join(dir, 'bin'), JITSU_UNIT_DIR: join(dir, 'unit'), JITSU_CONFIG_DIR: join(dir, 'etc') };
    const setup = (arg: string): Promise<{ stdout: string }> => run(join(ROOT, 'scripts/setup.sh'), [arg], { env, timeout: 60_000 });
    const first = await setup('--install-service');
    expect(first.stdout).toContain(`installed ${join(dir, 'etc/jitsu.yaml')}`);
    const installed = readFileSync(join(dir, 'unit/jitsu.service'), 'utf8');
    expect(installed).toContain(`ExecStart=${join(dir, 'bin/jitsu')} --config ${join(dir, 'etc/jitsu.yaml')}`);
    expect(readFileSync(join(dir, 'etc/jitsu.yaml'), 'utf8')).toBe(readFileSync(example, 'utf8'));
    if (haveCommand('systemd-analyze')) expect((await run('systemd-analyze', ['verify', join(dir, 'unit/jitsu.service')])).stderr).toBe('');

    writeFileSync(join(dir, 'etc/jitsu.yaml'), readFileSync(example, 'utf8') + '# edited\n');
    const again = await setup('--install-service');
    expect(again.stdout).toContain('(exists)');
    expect(readFileSync(join(dir, 'unit/jitsu.service'), 'utf8')).toBe(installed);

    const removed = await setup('--uninstall-service');
    expect(removed.stdout).toContain('kept');
    expect(existsSync(join(dir, 'unit/jitsu.service'))).toBe(false);
    expect(existsSync(join(dir, 'etc/jitsu.yaml'))).toBe(true);
    expect((await setup('--uninstall-service')).stdout).toContain('no ');

    // Someone else's unit is left alone.
    mkdirSync(join(dir, 'unit'), { recursive: true });
    writeFileSync(join(dir, 'unit/jitsu.service'), '[Service]\nExecStart=/bin/true\n');
    await expect(setup('--install-service')).rejects.toMatchObject({ code: 2 });
    expect(readFileSync(join(dir, 'unit/jitsu.service'), 'utf8')).toBe('[Service]\nExecStart=/bin/true\n');
  });
});
