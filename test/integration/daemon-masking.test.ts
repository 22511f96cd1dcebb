/**
 * Synjitsu through the whole daemon: a DNS query (or a bare SYN) summons a process service whose
 * network comes up only after a slow boot; a client in its own namespace connects at once and must
 * get its reply with zero SYN retransmissions. Subnet 10.200.0.0/16, prefix jt0.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createClientNetns, type ClientNetns } from '../helpers/client-netns.js';
import { CLI, DEMO_HTTP, cleanupNetwork, dig, haveCommand, isRoot, startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { buildGuest } from '../helpers/vm-env.js';

const canRun = isRoot() && haveCommand('dig') && haveCommand('curl') && haveCommand('nstat') && existsSync(CLI);
const PREFIX = `jt0m${process.pid.toString(36).slice(-2)}`;
let seq = 0;

const open: { daemon?: DaemonProcess; client?: ClientNetns }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.client?.remove();
    await o.daemon?.stop();
  }
});
afterAll(async () => {
  if (canRun) await cleanupNetwork(PREFIX);
});

async function setup(mask: string, bootMs: number, exec?: string): Promise<{ d: DaemonProcess; client: ClientNetns; id: string; ip: string }> {
  seq++;
  const id = `${PREFIX}${seq}`;
  const subnet = `10.200.${220 + seq}`;
  const ip = `${subnet}.10`;
  const program = exec ?? `${process.execPath} ${DEMO_HTTP} --port 80 --delay-ms ${bootMs} --message hello-${id}`;
  const entry: { daemon?: DaemonProcess; client?: ClientNetns } = {};
  open.push(entry);
  entry.daemon = await startDaemon({
    bridge: `${PREFIX}b${seq}`,
    services: [`name=${id},dns=${id}.jitsu.test,ip=${ip},mask=${mask},ready=tcp:80,exec="${program}"`],
    args: ['-f', '0.0.0.0', '--boot-timeout', '20'],
    metrics: true,
  });
  entry.client = await createClientNetns(`${id}c`, `${PREFIX}b${seq}`, `${subnet}.50/24`, `${subnet}.1`);
  return { d: entry.daemon, client: entry.client, id, ip };
}

async function timedCurl(client: ClientNetns, url: string, maxSeconds = 20): Promise<{ body: string; connect: number; firstByte: number; code: number; stderr: string }> {
  const r = await client.exec('curl', ['-sS', '--max-time', String(maxSeconds), '-w', '\\n%{time_connect} %{time_starttransfer}', url], (maxSeconds + 10) * 1000);
  const lines = r.stdout.trimEnd().split('\n');
  const [connect, firstByte] = (lines.pop() ?? '0 0').split(' ').map(Number) as [number, number];
  return { body: lines.join('\n'), connect, firstByte, code: r.code, stderr: r.stderr };
}

describe.skipIf(!canRun)('daemon with Synjitsu masking (process service booting like a VM)', () => {
  it.each([
    ['park', 300],
    ['handshake', 300],
    ['handshake', 3000],
  ])('mask=%s, %i ms boot: DNS answers at once, the client connects and gets its reply with no SYN retransmission', async (mask, bootMs) => {
    const { d, client, id, ip } = await setup(mask, bootMs);
    const before = await client.tcpCounters();
    const t0 = performance.now();
    const answer = await dig(d.port, `${id}.jitsu.test`);
    expect(answer.answers[0]).toContain(ip);
    expect(performance.now() - t0).toBeLessThan(bootMs); // answered before the boot finished
    const r = await timedCurl(client, `http://${ip}/`);
    expect(r.stderr).toBe('');
    expect(r.body).toContain(`hello-${id}`);
    const after = await client.tcpCounters();
    expect(after.synRetrans - before.synRetrans).toBe(0);
    // The reply cannot come before the service listened, and must not wait a SYN RTO beyond it.
    expect(r.firstByte * 1000).toBeGreaterThan(bootMs * 0.5);
    expect(r.firstByte * 1000).toBeLessThan(bootMs + 900);
    if (mask === 'handshake') expect(r.connect).toBeLessThan(0.2); // handshake completed by Synjitsu
  });

  it('a SYN to a stopped service summons it (no DNS query) and the connection completes', async () => {
    const { d, client, id, ip } = await setup('handshake', 200);
    const r = await timedCurl(client, `http://${ip}/`);
    expect(r.body).toContain(`hello-${id}`);
    expect((await client.tcpCounters()).synRetrans).toBe(0);
    await d.waitForLog(new RegExp(`msg=ready service=${id}`));
  });

  it('a boot failure resets the connections held for it, promptly', async () => {
    const { d, client, id, ip } = await setup('handshake', 0, '/bin/false');
    expect((await dig(d.port, `${id}.jitsu.test`)).answers[0]).toContain(ip);
    const t0 = performance.now();
    const r = await timedCurl(client, `http://${ip}/`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/reset|Empty reply|Recv failure/i);
    expect(performance.now() - t0).toBeLessThan(10_000);
    await d.waitForLog(/msg="boot failed"/);
  });
});

describe.skipIf(!canRun || !haveCommand('qemu-system-x86_64'))('daemon with Synjitsu masking a real microVM boot (unmodified guest)', () => {
  it('mask=handshake: DNS answers at once, the client connects at once, and gets the guest page with no SYN retransmission', async () => {
    const guest = await buildGuest();
    const id = `${PREFIX}vm`;
    const subnet = '10.200.240';
    const ip = `${subnet}.10`;
    const entry: { daemon?: DaemonProcess; client?: ClientNetns } = {};
    open.push(entry);
    entry.daemon = await startDaemon({
      bridge: `${PREFIX}bvm`,
      services: [`name=${id},dns=${id}.jitsu.test,ip=${ip},backend=qemu,mask=handshake,kernel=${guest.stock},initrd=${guest.initrd},tap=${PREFIX}tvm`],
      args: ['-f', '0.0.0.0', '--boot-timeout', '90'],
    });
    entry.client = await createClientNetns(`${id}c`, `${PREFIX}bvm`, `${subnet}.50/24`, `${subnet}.1`);
    const before = await entry.client.tcpCounters();
    const t0 = performance.now();
    expect((await dig(entry.daemon.port, `${id}.jitsu.test`)).answers[0]).toContain(ip);
    expect(performance.now() - t0).toBeLessThan(1000);
    const r = await timedCurl(entry.client, `http://${ip}/`);
    expect(r.stderr).toBe('');
    expect(r.body.trim()).toBe(`jitsu guest ${id}`);
    expect(r.connect).toBeLessThan(0.2);
    expect((await entry.client.tcpCounters()).synRetrans - before.synRetrans).toBe(0);
    console.log(`[daemon-masking] microVM cold boot behind handshake: connect ${(r.connect * 1000).toFixed(1)} ms, first byte ${(r.firstByte * 1000).toFixed(0)} ms, 0 SYN retransmits`);
  });

  const PRESPAWN = {
    on: { what: 'restores a copy in a QEMU started ahead', note: /restored from template \S+ in a pre-spawned QEMU/g, tag: 'n', subnet: '10.200.241' },
    warm: { what: 'runs on a copy restored and warmed ahead', note: /restored from template \S+ ahead and warmed while stopped/g, tag: 'w', subnet: '10.200.242' },
  } as const;
  for (const [prespawn, mode] of Object.entries(PRESPAWN)) it(`snapshot=template, prespawn=${prespawn}: after the first boot every summon ${mode.what}, by a query or a bare SYN, behind handshake, with no SYN retransmission`, async () => {
    const guest = await buildGuest();
    const id = `${PREFIX}s${mode.tag}`;
    const subnet = mode.subnet;
    const ip = `${subnet}.10`;
    const snapshots = mkdtempSync('/dev/shm/jt0m-snap-');
    const entry: { daemon?: DaemonProcess; client?: ClientNetns } = {};
    open.push(entry);
    try {
      entry.daemon = await startDaemon({
        bridge: `${PREFIX}bs${mode.tag}`,
        services: [`name=${id},dns=${id}.jitsu.test,ip=${ip},backend=qemu,mask=handshake,snapshot=template,prespawn=${prespawn},kernel=${guest.stock},initrd=${guest.initrd},tap=${PREFIX}ts${mode.tag}`],
        args: ['-f', '0.0.0.0', '--boot-timeout', '120', '--snapshot-dir', snapshots, '--idle-timeout', '2', '--sweep-interval', '0.5'],
        metrics: true,
      });
      entry.client = await createClientNetns(`${id}c`, `${PREFIX}bs${mode.tag}`, `${subnet}.50/24`, `${subnet}.1`);
      // First summon: a cold boot that saves the template, the client held meanwhile.
      expect((await dig(entry.daemon.port, `${id}.jitsu.test`)).answers[0]).toContain(ip);
      expect((await timedCurl(entry.client, `http://${ip}/`, 120)).body.trim()).toBe(`jitsu guest ${id}`);
      await entry.daemon.waitForLog(/template saved/, 5000);
      const firstBytes: number[] = [];
      for (let i = 0; i < 2; i++) {
        await waitUntilStopped(entry.daemon, i + 1);
        // The next copy's QEMU is started once the service stopped, and shown as its standby.
        const standbyPid = async (): Promise<number | null> => ((await (await fetch(`http://127.0.0.1:${entry.daemon!.metricsPort}/status`)).json()) as { services: { standbyPid: number | null }[] }).services[0]!.standbyPid;
        await expect.poll(standbyPid, { timeout: 30_000, interval: 100 }).not.toBeNull();
        const before = await entry.client.tcpCounters();
        // The first restore is summoned by a query, the second by the client's bare SYN.
        if (i === 0) expect((await dig(entry.daemon.port, `${id}.jitsu.test`)).answers[0]).toContain(ip);
        const r = await timedCurl(entry.client, `http://${ip}/`);
        expect(r.stderr).toBe('');
        expect(r.body.trim()).toBe(`jitsu guest ${id}`);
        expect((await entry.client.tcpCounters()).synRetrans - before.synRetrans).toBe(0);
        firstBytes.push(r.firstByte * 1000);
      }
      expect(entry.daemon.logs().match(mode.note)?.length).toBe(2);
      // Accounted: /status and /metrics read the snapshot dir (the template's RAM file and state).
      const status = (await (await fetch(`http://127.0.0.1:${entry.daemon.metricsPort}/status`)).json()) as { snapshots: { dir: string; usedBytes: number; maxBytes: number; byService: Record<string, number> } };
      expect(status.snapshots.dir).toBe(snapshots);
      expect(status.snapshots.byService[id]).toBeGreaterThan(1024 * 1024);
      expect(status.snapshots.usedBytes).toBeLessThanOrEqual(status.snapshots.maxBytes);
      const metricsText = await (await fetch(`http://127.0.0.1:${entry.daemon.metricsPort}/metrics`)).text();
      expect(metricsText).toMatch(new RegExp(`jitsu_snapshot_bytes\\{service="${id}"\\} [1-9]`));
      console.log(`FIGURE daemon, qemu snapshot=template prespawn=${prespawn} behind handshake (TCG): curl's time to the first byte of a restored copy, summoned by a query then by a SYN: ${firstBytes.map((m) => m.toFixed(0)).join(', ')} ms, 0 SYN retransmits`);
    } finally {
      rmSync(snapshots, { recursive: true, force: true });
    }
  });
});

/** /status says the service is stopped (the idle reaper finished) and booted `boots` times. */
async function waitUntilStopped(daemon: DaemonProcess, boots: number): Promise<void> {
  const state = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${daemon.metricsPort}/status`);
    const svc = ((await res.json()) as { services: { state: string; bootCount: number }[] }).services[0]!;
    return `${svc.state}/${svc.bootCount}`;
  };
  await expect.poll(state, { timeout: 30_000, interval: 100 }).toBe(`stopped/${boots}`);
}
