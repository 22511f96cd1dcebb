// The xl-on-ARM scenarios, run inside the Xen-on-ARM lab's dom0 by lab/xen-arm/dom0.sh
// (test/integration/xl-xen-arm.test.ts boots the lab and asserts on what this records). A subset of the
// x86 lab's (lab/xen/driver.mjs): one daemon, a dig that makes it run `xl create`, curl gets the domU's page,
// an idle stop with -m destroy leaves no domain, a second summon, then SIGTERM of the daemon leaves nothing.
// Everything is the real thing: `jitsu -x xl` from the checkout, Xen's armhf xl, Debian's dig and curl.
// Every wait is bounded. Observations go to the console as `LAB-RESULT {json}` (and /run/lab-out/results.jsonl).
// Plain JavaScript (no build step): dom0.sh copies it and the daemon's files to RAM; the board's node runs it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHIM_DIR, XL, curl, curlPage, dig as digFor, labRecord, run, sleep, waitFor, xlList } from '../common/xl-lab.mjs';

const src = process.argv[2];
// In RAM: dom0's virtio-mmio devices (the 9p /out share among them) may stall once a domU runs.
const OUT = '/run/lab-out';
const BRIDGE = 'jitsu0';
const GUEST_IP = '10.77.6.10';
const NAME = 'www.xenarm.test';
const KERNEL = '/lab/vmlinuz';
const INITRD = '/lab/domU.cpio';
// Sized for a loaded 2-core TCG host (an ARM domU boots in ~10 s alone; 3-4x that when the cores are shared).
const BOOT_S = 240;
const IDLE_S = 15;
const SWEEP_S = 2;

// stdout is dom0's driver log here: results also go to the console, where the test reads them.
const { up, say, result, installShim, xlCalls, count, firstCallTime } = labRecord(OUT, { console: true });
const dig = (name, timeS = BOOT_S) => digFor(name, timeS);
const guests = async () => Object.keys(await xlList()).filter((n) => n !== 'Domain-0');

let daemon;
let daemonExit = null;
let daemonLog = '';
const logText = () => (existsSync(daemonLog) ? readFileSync(daemonLog, 'utf8') : '');

// type=pvh: on Arm every guest is the one PVH-like type (the xl backend's default is x86's pv).
const www = () =>
  `dns=${NAME},name=www,ip=${GUEST_IP},kernel=${KERNEL},initrd=${INITRD},memory=131072,type=pvh,cmdline="console=hvc0 quiet jitsu.ip=${GUEST_IP}/24 jitsu.name=www"`;

async function startDaemon(tag, mode, services, idleS = IDLE_S) {
  daemonLog = join(OUT, `daemon-${tag}.log`);
  const args = [join(src, 'dist/src/cli/main.js'), '-x', 'xl', '-b', '127.0.0.1', '-l', '53', '-f', '0.0.0.0', '-t', '5', '-d', '0',
    '--idle-timeout', String(idleS), '--sweep-interval', String(SWEEP_S), '--boot-timeout', String(BOOT_S), '-m', mode,
    // One backend worker: each thread loads the backends (tens of seconds of emulated CPU at start).
    '--workers', '1', '--state', '/var/lib/jitsu', '--bridge', BRIDGE, '--log-file', daemonLog, '--log-level', 'debug', ...services];
  daemonExit = null;
  daemon = spawn('node', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PATH: `${SHIM_DIR}:${process.env.PATH}` } });
  daemon.once('exit', (code, signal) => { daemonExit = { code, signal }; });
  const t = Date.now();
  const ok = await waitFor(() => (daemonExit === null && /msg="jitsu ready"/.test(logText()) ? true : undefined), 300_000, 250);
  const ms = Date.now() - t;
  say(`daemon ${tag} (-m ${mode}) ${ok ? 'up' : 'NOT up'} after ${ms} ms`);
  return { ok: Boolean(ok), ms };
}

async function stopDaemon(signal) {
  if (!daemon || daemonExit !== null) return daemonExit;
  const exited = new Promise((r) => daemon.once('exit', r));
  daemon.kill(signal);
  await Promise.race([exited, sleep(120_000)]);
  return daemonExit;
}

async function scenario(name, fn) {
  say(`scenario ${name}`);
  try {
    await fn();
  } catch (err) {
    result(name, { error: String(err?.stack ?? err) });
  }
}

async function main() {
  installShim();
  mkdirSync('/var/lib/jitsu', { recursive: true, mode: 0o700 });

  // What xl itself does with x86's default guest type on Arm (a dry run: nothing is built).
  writeFileSync('/var/tmp/pv-probe.cfg', `name = "pvprobe"\ntype = "pv"\nkernel = "${KERNEL}"\nmemory = 64\n`);
  // Alongside the daemon's start (minutes of emulated CPU under load): the run must fit its time box.
  const probing = run(XL, ['create', '-n', '/var/tmp/pv-probe.cfg'], 120_000)
    .then((pv) => result('pv-type', { code: pv.code, stderr: pv.stderr.trim().split('\n').slice(-3) }));

  const daemonUp = await startDaemon('a', 'destroy', [www()]);
  await probing;
  result('daemon', { ...daemonUp, node: process.version, arch: process.arch });
  if (!daemonUp.ok) {
    result('daemon-log', { tail: logText().split('\n').slice(-20) });
    return;
  }

  await scenario('boot', async () => {
    const started = Date.now();
    // A poller measures xl create -> the domU's first HTTP byte independently of the DNS answer.
    let firstByteAt;
    const polling = (async () => {
      while (firstByteAt === undefined && Date.now() - started < BOOT_S * 1000) {
        const tc = Date.now();
        const r = await curl(`http://${GUEST_IP}/`, 1);
        if (r.ok) firstByteAt = tc + (r.firstByteS ?? 0) * 1000;
        else await sleep(1000); // every spawn costs dom0 CPU the boot needs under TCG
      }
    })();
    const answer = await dig(NAME);
    const answeredMs = Date.now() - started;
    const page = await curlPage(`http://${GUEST_IP}/`);
    await Promise.race([polling, sleep(30_000)]);
    const createAt = firstCallTime('create', started - 1000);
    const list = await xlList();
    result('boot', { dig: answer, answeredMs, curl: page, creates: count('create'), domain: list['www'] ?? null,
      createToFirstByteMs: createAt !== undefined && firstByteAt !== undefined ? Math.round(firstByteAt - createAt) : null,
      digToFirstByteMs: firstByteAt !== undefined ? Math.round(firstByteAt - started) : null });
  });

  await scenario('idle-destroy', async () => {
    const t = Date.now();
    const gone = await waitFor(async () => ((await xlList())['www'] ? undefined : true), (IDLE_S * 2 + 180) * 1000, 2000);
    result('idle-destroy', { gone: Boolean(gone), afterMs: Date.now() - t, destroys: xlCalls().filter((c) => c === 'destroy www').length,
      stoppingLogged: /stopping.*mode=destroy/.test(logText()), leftover: await guests() });
  });

  await scenario('sigterm', async () => {
    const createsBefore = count('create');
    const answer = await dig(NAME);
    const page = await curlPage(`http://${GUEST_IP}/`);
    const runningBefore = (await xlList())['www'] ?? null;
    const t = Date.now();
    const exit = await stopDaemon('SIGTERM');
    const exitMs = Date.now() - t;
    const leftover = await guests();
    const bridgeLeft = existsSync(`/sys/class/net/${BRIDGE}`);
    result('sigterm', { dig: answer, curl: page, createsBefore, createsAfter: count('create'), runningBefore, exit, exitMs, leftover, bridgeLeft,
      destroys: xlCalls().filter((c) => c === 'destroy www').length });
  });
  result('done', { xlCalls: xlCalls().length, seconds: Number(up()) });
}

main().catch((err) => {
  result('driver', { error: String(err?.stack ?? err) });
}).finally(async () => {
  await stopDaemon('SIGKILL');
  process.exit(0);
});
