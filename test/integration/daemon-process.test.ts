/**
 * The whole Jitsu half, end to end, as a user runs it: the real CLI, real `dig` and `curl`, real
 * bridges, veths and network namespaces, the real process backend through the worker pool.
 * Subnet 10.200.0.0/16, interface prefix jt0 (see test/helpers/daemon.ts).
 */
import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, DEMO_HTTP, cleanupNetwork, curl, dig, freePort, haveCommand, isRoot, pidsMatching, startDaemon, type DaemonProcess } from '../helpers/daemon.js';

const run = promisify(execFile);
const canRun = isRoot() && haveCommand('dig') && haveCommand('curl') && existsSync(CLI);
const why = canRun ? '' : 'needs root, dig, curl and a build (npm run build:ts)';
const PREFIX = `jt0${process.pid.toString(36).slice(-3)}`;
let seq = 0;

function unique(): { id: string; bridge: string; subnet: string } {
  seq++;
  return { id: `${PREFIX}${seq}`, bridge: `${PREFIX}b${seq}`, subnet: `10.200.${(process.pid % 200) + seq}` };
}

function httpService(id: string, ip: string, extra = ''): string {
  return `name=${id},dns=${id}.jitsu.test,ip=${ip},port=80,exec="${process.execPath} ${DEMO_HTTP} --port 80 --message hello-${id}"${extra}`;
}

async function status(d: DaemonProcess): Promise<{ services: { service: string; state: string; suspended: boolean; bootCount: number; bootFailures: number; pid: number | null; standbyPid: number | null; lastBootMs: number | null; lastError: string | null }[] }> {
  const res = await fetch(`http://127.0.0.1:${d.metricsPort}/status`);
  return (await res.json()) as never;
}

const daemons: DaemonProcess[] = [];
async function daemon(opts: Parameters<typeof startDaemon>[0]): Promise<DaemonProcess> {
  const d = await startDaemon(opts);
  daemons.push(d);
  return d;
}

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});
afterAll(async () => {
  if (canRun) await cleanupNetwork(PREFIX);
});

describe.skipIf(!canRun)(`jitsu daemon with the process backend ${why}`, () => {
  it('boots a service on its first query, answers authoritatively, and curl gets its reply', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`)], args: ['-f', '0.0.0.0'], metrics: true });
    expect((await status(d)).services[0]).toMatchObject({ state: 'stopped', bootCount: 0 });

    const a = await dig(d.port, `${id}.jitsu.test`);
    expect(a.status).toBe('NOERROR');
    expect(a.flags).toContain('aa');
    expect(a.answers).toHaveLength(1);
    expect(a.answers[0]).toMatch(new RegExp(`^${id}\\.jitsu\\.test\\.\\s+60\\s+IN\\s+A\\s+${subnet}\\.10$`));
    expect(await curl(`http://${subnet}.10/`)).toContain(`hello-${id}`);

    const s = (await status(d)).services[0]!;
    expect(s).toMatchObject({ state: 'ready', bootCount: 1 });
    expect(s.lastBootMs).toBeGreaterThan(0);
    // The activated socket queues up to 65535 connections: the namespace's own somaxconn was raised.
    const { stdout: listening } = await run('ip', ['netns', 'exec', `jitsu-${id}`, 'ss', '-ltnH', 'sport = :80']);
    expect(listening.trim().split(/\s+/).slice(0, 3)).toEqual(['LISTEN', '0', '65535']);

    // Same answer over TCP; other types are NODATA with the SOA; unknown names in our zone NXDOMAIN.
    expect((await dig(d.port, `${id}.jitsu.test`, 'A', ['+tcp'])).answers[0]).toContain(`${subnet}.10`);
    const nodata = await dig(d.port, `${id}.jitsu.test`, 'MX');
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answers).toHaveLength(0);
    expect(nodata.authority[0]).toMatch(/^jitsu\.test\.\s+\d+\s+IN\s+SOA\s+ns\.jitsu\.test\. hostmaster\.jitsu\.test\./);
    const nx = await dig(d.port, `missing-${id}.jitsu.test`);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect((await dig(d.port, 'elsewhere.example')).status).toBe('REFUSED');
  });

  it('boots once however many queries race (50 concurrent digs)', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`)], args: ['-f', '0.0.0.0'], metrics: true });
    const results = await Promise.all(Array.from({ length: 50 }, () => dig(d.port, `${id}.jitsu.test`)));
    for (const r of results) expect(r.answers[0]).toContain(`${subnet}.10`);
    expect((await status(d)).services[0]).toMatchObject({ state: 'ready', bootCount: 1 });
    expect(await pidsMatching(`hello-${id}`)).toHaveLength(1);
    expect(await curl(`http://${subnet}.10/`)).toContain(`hello-${id}`);
  });

  it('stops a service idle for 2×TTL, then boots it again on the next query', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`)], args: ['-f', '0.0.0.0', '-t', '1', '--sweep-interval', '0.2'], metrics: true });
    await dig(d.port, `${id}.jitsu.test`);
    expect(await pidsMatching(`hello-${id}`)).toHaveLength(1);
    await d.waitForLog(new RegExp(`msg="?idle, stopping"? service=${id}`), 10_000);
    await d.waitForLog(new RegExp(`msg=stopping service=${id} mode=destroy`));
    await expect.poll(async () => (await status(d)).services[0]!.state, { timeout: 5_000 }).toBe('stopped');
    await expect.poll(() => pidsMatching(`hello-${id}`), { timeout: 5_000 }).toHaveLength(0);

    await dig(d.port, `${id}.jitsu.test`);
    expect((await status(d)).services[0]).toMatchObject({ state: 'ready', bootCount: 2 });
    expect(await curl(`http://${subnet}.10/`)).toContain(`hello-${id}`);
  });

  it('suspends a service idle for 2×TTL with stop=suspend and resumes that same process on the next query', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`, ',stop=suspend')], args: ['-f', '0.0.0.0', '-t', '1', '--sweep-interval', '0.2'], metrics: true });
    await dig(d.port, `${id}.jitsu.test`);
    const pid = (await status(d)).services[0]!.pid!;
    expect(await pidsMatching(`hello-${id}`)).toEqual([pid]);
    await d.waitForLog(new RegExp(`msg=stopping service=${id} mode=suspend`), 10_000);
    await expect.poll(async () => (await status(d)).services[0], { timeout: 5_000 }).toMatchObject({ state: 'stopped', suspended: true });
    // Frozen, not gone: the kernel says stopped (T), and the same pid is still there.
    expect((await readFile(`/proc/${pid}/stat`, 'latin1')).split(') ')[1]!.charAt(0)).toBe('T');

    const again = await dig(d.port, `${id}.jitsu.test`);
    expect(again.answers[0]).toContain(`${subnet}.10`);
    await d.waitForLog(new RegExp(`msg=resuming service=${id}`));
    expect((await status(d)).services[0]).toMatchObject({ state: 'ready', suspended: false, bootCount: 2, pid });
    expect(await curl(`http://${subnet}.10/`)).toContain(`hello-${id}`);
  });

  it('precreate=warm: the next command waits serving and frozen (shown in /status); a query thaws that pid; an idle stop leaves a fresh frozen one; SIGTERM ends it', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`, ',precreate=warm')], args: ['-f', '0.0.0.0', '-t', '1', '--sweep-interval', '0.2'], metrics: true });
    const procState = async (pid: number): Promise<string> => (await readFile(`/proc/${pid}/stat`, 'latin1')).split(') ')[1]!.charAt(0);
    const frozenStandby = async (): Promise<number> => {
      await expect.poll(async () => (await status(d)).services[0]!.standbyPid, { timeout: 20_000, interval: 50 }).not.toBeNull();
      const pid = (await status(d)).services[0]!.standbyPid!;
      expect(await procState(pid)).toBe('T');
      return pid;
    };
    const first = await frozenStandby();
    expect(await pidsMatching(`hello-${id}`)).toEqual([first]);

    expect((await dig(d.port, `${id}.jitsu.test`)).answers[0]).toContain(`${subnet}.10`);
    expect((await status(d)).services[0]).toMatchObject({ state: 'ready', pid: first, standbyPid: null });
    expect(await procState(first)).not.toBe('T');
    expect(await curl(`http://${subnet}.10/`)).toContain(`hello-${id}`);

    await d.waitForLog(new RegExp(`msg=stopping service=${id} mode=destroy`), 10_000);
    const second = await frozenStandby();
    expect(second).not.toBe(first);
    expect(await pidsMatching(`hello-${id}`)).toEqual([second]);
    expect(await d.stop()).toBe(0);
    expect(await pidsMatching(`hello-${id}`)).toEqual([]);
  });

  it.skipIf(!haveCommand('dnsmasq'))('forwards names it does not own to a second local resolver, and SERVFAILs when it is down (needs dnsmasq)', async () => {
    const { id, bridge, subnet } = unique();
    const upstreamPort = await freePort();
    const dnsmasq = spawn('dnsmasq', ['--no-daemon', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--port=${upstreamPort}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--address=/upstream.example/192.0.2.77', '--address=/jitsu.test/192.0.2.78'], { stdio: 'ignore' });
    const exited = new Promise((r) => dnsmasq.once('exit', r));
    try {
      // Up once it answers (it binds before it serves).
      await expect.poll(async () => (await dig(upstreamPort, 'www.upstream.example').catch(() => undefined))?.status, { timeout: 5_000, interval: 50 }).toBe('NOERROR');
      const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`)], args: ['-f', '127.0.0.1', '-p', String(upstreamPort)] });
      const fwd = await dig(d.port, 'www.upstream.example');
      expect(fwd.status).toBe('NOERROR');
      expect(fwd.answers[0]).toMatch(/192\.0\.2\.77$/);
      // With forwarding on, unknown names inside our zone go upstream too; our own names never do.
      expect((await dig(d.port, `missing-${id}.jitsu.test`)).answers[0]).toMatch(/192\.0\.2\.78$/);
      expect((await dig(d.port, `${id}.jitsu.test`)).answers[0]).toMatch(new RegExp(`${subnet}\\.10$`));
      dnsmasq.kill('SIGKILL');
      await exited;
      expect((await dig(d.port, 'down.upstream.example')).status).toBe('SERVFAIL');
    } finally {
      dnsmasq.kill('SIGKILL');
    }
  });

  it('answers SERVFAIL for a service that fails to boot, logs the cause, and retries on the next query', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [`name=${id},dns=${id}.jitsu.test,ip=${subnet}.10,exec=/nonexistent/${id}`], args: ['-f', '0.0.0.0', '-d', '0'], metrics: true });
    expect((await dig(d.port, `${id}.jitsu.test`)).status).toBe('SERVFAIL');
    await d.waitForLog(/msg="boot failed".*code=BOOT_FAILED/);
    const first = (await status(d)).services[0]!;
    expect(first).toMatchObject({ state: 'stopped', bootFailures: 1 });
    expect(first.lastError).toMatch(/nonexistent/);
    expect((await dig(d.port, `${id}.jitsu.test`)).status).toBe('SERVFAIL');
    expect((await status(d)).services[0]).toMatchObject({ bootCount: 2, bootFailures: 2 });
  });

  it('counts and drops malformed packets and keeps answering', async () => {
    const { id, bridge, subnet } = unique();
    const d = await daemon({ bridge, services: [httpService(id, `${subnet}.10`)], args: ['-f', '0.0.0.0'], metrics: true });
    const sock = createSocket('udp4');
    const garbage = [Buffer.alloc(0), Buffer.from('not dns'), Buffer.alloc(12, 0xff), Buffer.from('0000010000010000000000000377777700000100', 'hex'), Buffer.alloc(3000, 0x41)];
    for (const g of garbage) await new Promise<void>((r) => sock.send(g, d.port, '127.0.0.1', () => r()));
    sock.close();
    expect((await dig(d.port, `${id}.jitsu.test`)).answers[0]).toContain(`${subnet}.10`);
    const metrics = await (await fetch(`http://127.0.0.1:${d.metricsPort}/metrics`)).text();
    const malformed = [...metrics.matchAll(/^jitsu_dns_malformed_total\S* (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    expect(malformed).toBeGreaterThanOrEqual(3);
    expect(metrics).toMatch(/^jitsu_boots_total\{service="[^"]+",result="ok"\} 1$/m);
    // The daemon's own overhead, query -> backend start call in the worker, is recorded per boot.
    expect(metrics).toMatch(/^jitsu_orchestration_seconds_count\{step="query_to_start"\} 1$/m);
    expect(d.child.exitCode).toBeNull();
  });

  it('adopts services still running after the daemon is killed and restarted, without booting them again', async () => {
    const { id, bridge, subnet } = unique();
    const services = [httpService(id, `${subnet}.10`)];
    const first = await daemon({ bridge, services, args: ['-f', '0.0.0.0'], metrics: true });
    await dig(first.port, `${id}.jitsu.test`);
    const pid = (await status(first)).services[0]!.pid;
    expect(pid).toBeGreaterThan(0);
    await first.kill();
    expect(await pidsMatching(`hello-${id}`)).toEqual([pid]);

    const second = await daemon({ bridge, services, stateDir: first.stateDir, args: ['-f', '0.0.0.0'], metrics: true });
    expect((await status(second)).services[0]).toMatchObject({ state: 'ready', bootCount: 1, pid });
    expect((await dig(second.port, `${id}.jitsu.test`)).answers[0]).toContain(`${subnet}.10`);
    expect(await curl(`http://${subnet}.10/`)).toContain(`hello-${id}`);
    expect(await pidsMatching(`hello-${id}`)).toEqual([pid]);

    // A clean exit stops what it runs and removes what it made.
    expect(await second.stop()).toBe(0);
    await expect.poll(() => pidsMatching(`hello-${id}`), { timeout: 5_000 }).toHaveLength(0);
    const { stdout } = await run('ip', ['-o', 'link', 'show']);
    expect(stdout).not.toContain(bridge);
    expect(existsSync(`/run/netns/jitsu-${id}`)).toBe(false);
  });

  it('serves IPv6 listeners and AAAA services', async () => {
    const { id, bridge } = unique();
    const v6 = `fd00:200:${(process.pid % 4000).toString(16)}:${seq}::10`;
    const d = await daemon({ bridge, services: [httpService(id, v6)], args: ['-f', '0.0.0.0', '-b', '::1'] });
    const aaaa = await dig(d.port, `${id}.jitsu.test`, 'AAAA', [], '::1');
    expect(aaaa.answers[0]).toMatch(new RegExp(`AAAA\\s+${v6.replace(/:/g, ':')}$`));
    expect(await curl(`http://[${v6}]/`, ['-g'])).toContain(`hello-${id}`);
    const a = await dig(d.port, `${id}.jitsu.test`, 'A', [], '::1');
    expect(a.status).toBe('NOERROR');
    expect(a.answers).toHaveLength(0);
  });
});

describe.skipIf(!existsSync(CLI))('jitsu command line', () => {
  const cli = (args: string[]) =>
    run(process.execPath, [CLI, ...args]).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it.each([
    [['--bogus'], /^jitsu: --bogus: unknown option/],
    [['-l', 'abc', 'dns=a.jitsu.test,ip=10.200.0.2'], /^jitsu: --port: "abc" is not a number/],
    [['dns=a.jitsu.test,ip=10.200.0.2,colour=red'], /^jitsu: colour: unknown key for the process backend/],
    [['dns=a.jitsu.test,ip=10.200.0.2'], /^jitsu: exec: the process backend needs exec=/],
    [[], /^jitsu: no services/],
    [['--config', '/nonexistent.yaml'], /^jitsu: --config: cannot read \/nonexistent.yaml: ENOENT/],
  ])('%j exits 2 with one line naming the problem', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--help documents every flag and every backend key', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const flag of ['-b, --bind', '-l, --port', '-f, --forwarder', '-p, --forwarder-port', '-x, --backend', '-c, --backend-uri', '-d, --delay', '-t, --ttl', '-m, --mode', '--synjitsu', '--state', '--metrics', '--log-level', '--config']) {
      expect(r.stdout).toContain(flag);
    }
    for (const backend of ['process', 'qemu', 'libvirt', 'container', 'xl']) expect(r.stdout).toContain(`Backend ${backend}:`);
    expect(r.stdout).toMatch(/^\s+exec \(required\)/m);
  });
});

describe.skipIf(!canRun)('jitsu daemon summoning many services at once', () => {
  it('boots 12 services summoned in the same instant, each once, none refused', async () => {
    const { bridge } = unique();
    const subnet = `10.200.${200 + (process.pid % 20)}`;
    const ids = Array.from({ length: 12 }, (_, i) => `${PREFIX}m${i}`);
    // No activation: each boot holds a backend call until its server listens (300 ms), as a VM's ready() does.
    const services = ids.map(
      (id, i) => `name=${id},dns=${id}.jitsu.test,ip=${subnet}.${10 + i},mask=none,exec="${process.execPath} ${DEMO_HTTP} --port 80 --delay-ms 300 --message hello-${id}"`,
    );
    const d = await daemon({ bridge, services, args: ['-f', '0.0.0.0', '-d', '0'], metrics: true });
    const answers = await Promise.all(ids.map((id) => dig(d.port, `${id}.jitsu.test`)));
    answers.forEach((a, i) => {
      expect(a.status, `${ids[i]}: ${a.raw}`).toBe('NOERROR');
      expect(a.answers[0]).toContain(`${subnet}.${10 + i}`);
    });
    for (const s of (await status(d)).services) expect(s).toMatchObject({ state: 'ready', bootCount: 1, bootFailures: 0 });
    expect(await curl(`http://${subnet}.21/`)).toContain(`hello-${ids[11]}`);
  });
});

describe.skipIf(!canRun)('jitsu daemon shutting down during a boot', () => {
  it('SIGTERM while a service is still booting exits promptly and leaves no process or namespace behind', async () => {
    const { id, bridge, subnet } = unique();
    // The server listens only after 60 s: the boot is mid-ready() when the daemon is told to stop.
    const service = `name=${id},dns=${id}.jitsu.test,ip=${subnet}.10,mask=none,exec="${process.execPath} ${DEMO_HTTP} --port 80 --delay-ms 60000 --message hello-${id}"`;
    const d = await daemon({ bridge, services: [service], args: ['-f', '0.0.0.0', '--boot-timeout', '120'] });
    void dig(d.port, `${id}.jitsu.test`, 'A', ['+time=1']).catch(() => undefined);
    await d.waitForLog(new RegExp(`msg=booting service=${id}`));
    await expect.poll(() => pidsMatching(`hello-${id}`), { timeout: 5_000 }).toHaveLength(1);
    const t0 = performance.now();
    expect(await d.stop()).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(await pidsMatching(`hello-${id}`)).toHaveLength(0);
    expect(existsSync(`/run/netns/jitsu-${id}`)).toBe(false);
  });
});
