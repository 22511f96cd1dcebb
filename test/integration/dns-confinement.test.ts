/**
 * Confinement and safe defaults, against the real CLI: no open resolver (--allow-forward), RRL of
 * our answers (--rrl-rate/--rrl-slip), bounded boots (--max-booting), a private state dir.
 * Real dig, a real client in its own network namespace on another subnet, dnsmasq as the upstream.
 * Interface prefix jrl, subnets 10.208.N.0/24.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientNetns, type ClientNetns } from '../helpers/client-netns.js';
import { CLI, cleanupNetwork, dig, freePort, haveCommand, isRoot, removeDir, startDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';

const run = promisify(execFile);
const PREFIX = 'jrl';
const canRun = isRoot() && haveCommand('dig') && haveCommand('busybox') && existsSync(CLI);
const why = canRun ? '' : '(needs root, dig, busybox and a build: npm run build:ts)';
const haveDnsmasq = haveCommand('dnsmasq');
/** httpd's document root: any directory the service can see (a process service may get a private /tmp). */
const WWW = '/usr/share';

/** A service that serves HTTP on port 80 once `delayS` seconds have passed (ready = it listens). */
function httpService(name: string, ip: string, delayS = 0): string {
  const exec = delayS > 0 ? `sh -c 'sleep ${delayS}; exec busybox httpd -f -p 80 -h ${WWW}'` : `busybox httpd -f -p 80 -h ${WWW}`;
  return `name=${name},dns=${name}.jitsu.test,ip=${ip},mask=none,ready=tcp:80,exec="${exec}"`;
}

/**
 * A UDP query flood as a stand-alone script (it runs inside a client namespace with `node -e`):
 * `count` A queries for `names` in rotation, paced in bursts over `durationMs`, then `waitMs` for
 * late replies. Prints what came back: answers, truncated (TC) replies, rcodes, silence, latencies.
 */
const FLOOD_JS = `
const dgram = require('node:dgram');
const { server, port, names, count, durationMs, waitMs } = JSON.parse(process.argv[1]);
const sock = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
const sentAt = new Map();
const out = { sent: 0, replies: 0, answers: 0, tc: 0, noerror: 0, servfail: 0, refused: 0, other: 0, servfailMs: [] };
function wire(id, name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0); h.writeUInt16BE(0x0100, 2); h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
sock.on('message', (m) => {
  const id = m.readUInt16BE(0);
  const t0 = sentAt.get(id);
  if (t0 === undefined) return;
  sentAt.delete(id);
  out.replies++;
  const flags = m.readUInt16BE(2);
  const rcode = flags & 15;
  if (flags & 0x0200) out.tc++;
  else if (rcode === 0 && m.readUInt16BE(6) > 0) out.answers++;
  if (rcode === 0) out.noerror++;
  else if (rcode === 2) { out.servfail++; out.servfailMs.push(Number(process.hrtime.bigint() - t0) / 1e6); }
  else if (rcode === 5) out.refused++;
  else out.other++;
});
const burst = 20;
const gap = durationMs / Math.ceil(count / burst);
let i = 0;
const tick = () => {
  for (let k = 0; k < burst && i < count; k++, i++) {
    sentAt.set(i, process.hrtime.bigint());
    sock.send(wire(i, names[i % names.length]), port, server);
    out.sent++;
  }
  if (i < count) setTimeout(tick, gap);
  else setTimeout(() => { out.silent = sentAt.size; sock.close(); console.log(JSON.stringify(out)); }, waitMs);
};
tick();
`;

interface FloodResult {
  sent: number;
  replies: number;
  answers: number;
  tc: number;
  noerror: number;
  servfail: number;
  refused: number;
  other: number;
  silent: number;
  servfailMs: number[];
}

interface FloodSpec {
  server: string;
  port: number;
  names: string[];
  count: number;
  durationMs: number;
  waitMs: number;
}

async function floodFromHost(spec: FloodSpec): Promise<FloodResult> {
  const { stdout } = await run(process.execPath, ['-e', FLOOD_JS, JSON.stringify(spec)], { timeout: 60_000 });
  return JSON.parse(stdout) as FloodResult;
}

async function floodFrom(client: ClientNetns, spec: FloodSpec): Promise<FloodResult> {
  const r = await client.exec(process.execPath, ['-e', FLOOD_JS, JSON.stringify(spec)], 60_000);
  if (r.code !== 0) throw new Error(`flood failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as FloodResult;
}

async function metric(d: DaemonProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${d.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.slice(0, l.lastIndexOf(' ')) === name);
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function bootingNow(d: DaemonProcess): Promise<number> {
  const st = (await (await fetch(`http://127.0.0.1:${d.metricsPort}/status`)).json()) as { services: { state: string }[] };
  return st.services.filter((s) => s.state === 'booting').length;
}

/** dnsmasq on loopback as the upstream resolver, answering fwd.example. */
async function startUpstream(): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    'dnsmasq',
    ['--no-daemon', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--pid-file=', '--user=root', '--address=/fwd.example/192.0.2.99'],
    { stdio: 'ignore' },
  );
  const exited = new Promise((r) => child.once('exit', r));
  for (let i = 0; i < 50; i++) {
    const r = await dig(port, 'fwd.example').catch(() => undefined);
    if (r?.status === 'NOERROR') break;
    await new Promise((r2) => setTimeout(r2, 100));
  }
  return {
    port,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The test's own bridge with a host address: the daemon binds it, off-host clients hang off it. */
async function testBridge(name: string, hostCidr: string): Promise<void> {
  await run('ip', ['link', 'add', name, 'type', 'bridge']);
  await run('ip', ['addr', 'add', hostCidr, 'dev', name]);
  await run('ip', ['link', 'set', name, 'up']);
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  if (canRun) await cleanupNetwork(PREFIX);
});

describe.skipIf(!canRun || !haveDnsmasq)(`no open resolver, RRL ${why}${haveDnsmasq ? '' : ' (needs dnsmasq as the upstream)'}`, () => {
  let upstream: { port: number; stop: () => Promise<void> };
  let d: DaemonProcess;
  let client: ClientNetns;
  const own = `${PREFIX}a.jitsu.test`;

  beforeAll(async () => {
    await cleanupNetwork(PREFIX);
    upstream = await startUpstream();
    cleanups.push(() => upstream.stop());
    // An off-host client: its own namespace on 10.208.1.0/24, not loopback, not a service subnet.
    await testBridge(`${PREFIX}t0`, '10.208.1.1/24');
    client = await createClientNetns(`${PREFIX}c1`, `${PREFIX}t0`, '10.208.1.2/24', '10.208.1.1');
    cleanups.push(() => client.remove());
    d = await startDaemon({
      bridge: `${PREFIX}b1`,
      services: [httpService(`${PREFIX}a`, '10.208.2.10')],
      args: ['-b', '10.208.1.1', '-f', '127.0.0.1', '-p', String(upstream.port), '-d', '0', '--rrl-rate', '100', '--rrl-slip', '2'],
      metrics: true,
    });
    cleanups.push(() => d.stop());
  }, 60_000);

  it('an off-host client gets REFUSED for a forwarded name and an answer for our own; a local client is still forwarded', async () => {
    // The host itself asking through the bridge address is not loopback either: refused too.
    const refused = await dig(d.port, 'fwd.example', 'A', [], '10.208.1.1').catch(() => undefined);
    const fromClient = await client.exec('dig', ['@10.208.1.1', '-p', String(d.port), 'fwd.example', 'A', '+time=5', '+tries=1', '+nocookie']);
    expect(fromClient.stdout).toMatch(/status: REFUSED/);
    expect(fromClient.stdout).not.toMatch(/192\.0\.2\.99/);
    const ownFromClient = await client.exec('dig', ['@10.208.1.1', '-p', String(d.port), own, 'A', '+time=10', '+tries=1', '+nocookie']);
    expect(ownFromClient.stdout).toMatch(/status: NOERROR/);
    expect(ownFromClient.stdout).toMatch(new RegExp(`${own.replace(/\./g, '\\.')}\\.\\s+\\d+\\s+IN\\s+A\\s+10\\.208\\.2\\.10`));
    const local = await dig(d.port, 'fwd.example');
    expect(local.status).toBe('NOERROR');
    expect(local.answers.join('\n')).toContain('192.0.2.99');
    expect(refused?.status).toBe('REFUSED');
    expect(await metric(d, 'jitsu_dns_forward_refused_total')).toBe(2);
    expect(await metric(d, 'jitsu_dns_forwarded_total')).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a flood from one client is limited and slipped (TC=1); TCP and loopback are still answered', async () => {
    await dig(d.port, own); // the service is up: every answer below comes from the cache path
    const limitedBefore = await metric(d, 'jitsu_dns_rrl_limited_total');
    const slippedBefore = await metric(d, 'jitsu_dns_rrl_slipped_total');
    const t0 = Date.now();
    const r = await floodFrom(client, { server: '10.208.1.1', port: d.port, names: [own], count: 2000, durationMs: 2000, waitMs: 1000 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    const dropped = r.sent - r.replies;
    // 100/s with a one-second burst over ~2 s: about 300 answers; half of the rest truncated, half dropped.
    expect(r.sent).toBe(2000);
    expect(r.answers).toBeGreaterThanOrEqual(100);
    expect(r.answers).toBeLessThan(600);
    expect(r.tc).toBeGreaterThan(500);
    expect(dropped).toBeGreaterThan(500);
    expect(Math.abs(r.tc - dropped)).toBeLessThan(0.1 * (r.tc + dropped));
    expect(await metric(d, 'jitsu_dns_rrl_slipped_total') - slippedBefore).toBe(r.tc);
    expect(await metric(d, 'jitsu_dns_rrl_limited_total') - limitedBefore).toBe(r.tc + dropped);
    // The limited client falls back to TCP (dig +tcp, as a resolver does after TC=1): answered.
    const tcp = await client.exec('dig', ['@10.208.1.1', '-p', String(d.port), own, 'A', '+tcp', '+time=5', '+tries=1', '+nocookie']);
    expect(tcp.stdout).toMatch(/status: NOERROR/);
    expect(tcp.stdout).toMatch(/flags: qr aa/);
    expect(tcp.stdout).toMatch(/IN\s+A\s+10\.208\.2\.10/);
    // Loopback is never limited, even right after the flood.
    const local = await floodFromHost({ server: '127.0.0.1', port: d.port, names: [own], count: 500, durationMs: 250, waitMs: 500 });
    expect(local.answers).toBe(500);
    console.log(`RRL flood (100/s, slip 2): ${r.sent} sent in ~2 s: ${r.answers} answered, ${r.tc} TC, ${dropped} dropped; loopback 500/500`);
  }, 60_000);
});

describe.skipIf(!canRun || !haveDnsmasq)(`bounded boots: a flood for many names ${why}`, () => {
  const SERVICES = 100;
  const MAX_BOOTING = 4;
  let upstream: { port: number; stop: () => Promise<void> };
  let d: DaemonProcess;

  beforeAll(async () => {
    await cleanupNetwork(`${PREFIX}s`);
    upstream = await startUpstream();
    cleanups.push(() => upstream.stop());
    const services = Array.from({ length: SERVICES }, (_, i) => httpService(`${PREFIX}s${i}`, `10.208.3.${10 + i}`, 2));
    services.push(httpService(`${PREFIX}run`, '10.208.3.200'));
    d = await startDaemon({
      bridge: `${PREFIX}b2`,
      services,
      args: ['-f', '127.0.0.1', '-p', String(upstream.port), '-d', '0', '--max-booting', String(MAX_BOOTING), '--summon-rate', '0', '--boot-timeout', '30'],
      metrics: true,
    });
    cleanups.push(() => d.stop());
  }, 120_000);

  it(`starts at most ${MAX_BOOTING} boots at once, refuses the rest with SERVFAIL at once, and keeps answering everything else`, async () => {
    expect((await dig(d.port, `${PREFIX}run.jitsu.test`)).status).toBe('NOERROR'); // a running service
    const names = Array.from({ length: SERVICES }, (_, i) => `${PREFIX}s${i}.jitsu.test`);
    let maxBooting = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        maxBooting = Math.max(maxBooting, await bootingNow(d));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const flood = floodFromHost({ server: '127.0.0.1', port: d.port, names, count: 3 * SERVICES, durationMs: 1500, waitMs: 4000 });
    // Mid-flood: a running service's name and a forwarded name are answered, promptly.
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    const [running, forwarded] = await Promise.all([dig(d.port, `${PREFIX}run.jitsu.test`), dig(d.port, 'fwd.example')]);
    const midFloodMs = Date.now() - t0;
    const r = await flood;
    polling = false;
    await poller;

    expect(running.status).toBe('NOERROR');
    expect(running.answers.join('\n')).toContain('10.208.3.200');
    expect(forwarded.answers.join('\n')).toContain('192.0.2.99');
    expect(midFloodMs).toBeLessThan(1000);
    expect(maxBooting).toBeGreaterThanOrEqual(1);
    expect(maxBooting).toBeLessThanOrEqual(MAX_BOOTING);
    // Every query got an answer: the admitted boots' names (NOERROR after ~2 s), the rest SERVFAIL at once.
    expect(r.silent).toBe(0);
    expect(r.servfail).toBeGreaterThan(SERVICES);
    expect(r.noerror).toBeGreaterThanOrEqual(MAX_BOOTING);
    const sorted = [...r.servfailMs].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    expect(median).toBeLessThan(100);
    const refused = await metric(d, 'jitsu_summons_refused_total{reason="max_booting"}');
    expect(refused).toBeGreaterThan(SERVICES);
    const st = (await (await fetch(`http://127.0.0.1:${d.metricsPort}/status`)).json()) as { services: { bootCount: number }[] };
    const boots = st.services.reduce((n, s) => n + s.bootCount, 0);
    expect(boots).toBeLessThan(SERVICES / 2); // most names never booted: the gate held
    console.log(
      `boot storm: ${r.sent} queries for ${SERVICES} names: max ${maxBooting} booting at once, ${boots - 1} boots, ${r.servfail} SERVFAIL (median ${median.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms), ${r.noerror} NOERROR; mid-flood answers in ${midFloodMs} ms`,
    );
  }, 120_000);
});

describe.skipIf(!canRun)(`a state dir others may write ${why}`, () => {
  it('exits 2 with one line naming --state and the fix', async () => {
    const dir = tempDir('jrl-state-');
    cleanups.push(async () => removeDir(dir));
    chmodSync(dir, 0o777);
    const err = await run(process.execPath, [CLI, '-l', '0', '--bridge', `${PREFIX}b3`, '--state', dir, `name=${PREFIX}x,dns=${PREFIX}x.jitsu.test,ip=10.208.4.10,exec=/bin/true`], { timeout: 20_000 }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(2);
    const lines = (err?.stderr ?? '').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(`jitsu: --state: ${dir} is writable by group and others (mode 0777), so they could make the daemon adopt and stop processes: chmod go-w ${dir}, or give a directory only its owner can write`);
    const ls = await run('ip', ['link', 'show', `${PREFIX}b3`]).then(() => 'exists', () => 'absent');
    expect(ls).toBe('absent'); // refused before anything was made
  });
});
