// The xl-on-ARM scenarios, run inside the Xen-on-ARM lab's dom0 by lab/xen-arm/dom0.sh
// (test/integration/xl-xen-arm.test.ts boots the lab and asserts on what this records). A subset of the
// x86 lab's (lab/xen/driver.mjs): one daemon, a dig that makes it run `xl create`, curl gets the domU's page,
// an idle stop with -m destroy leaves no domain, a second summon, then SIGTERM of the daemon leaves nothing.
// Everything is the real thing: `jitsu -x xl` from the checkout, Xen's armhf xl, Debian's dig and curl.
// Every wait is bounded. Observations go to the console as `LAB-RESULT {json}` (and /run/lab-out/results.jsonl).
// Plain JavaScript (no build step): dom0.sh copies it and the daemon's files to RAM; the board's node runs it.
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const src = process.argv[2];
// In RAM: dom0's virtio-mmio devices (the 9p /out share among them) may stall once a domU runs.
const OUT = '/run/lab-out';
const XL_CALLS = join(OUT, 'xl-calls.log');
const SHIM_DIR = '/run/xl-shim';
const BRIDGE = 'jitsu0';
const GUEST_IP = '10.77.6.10';
const NAME = 'www.xenarm.test';
const KERNEL = '/lab/vmlinuz';
const INITRD = '/lab/domU.cpio';
// Sized for a loaded 2-core TCG host (an ARM domU boots in ~10 s alone; 3-4x that when the cores are shared).
const BOOT_S = 240;
const IDLE_S = 15;
const SWEEP_S = 2;

const t0 = Date.now();
const up = () => ((Date.now() - t0) / 1000).toFixed(1);
const toConsole = (line) => { try { appendFileSync('/dev/console', line + '\n'); } catch { /* the log has it */ } };
const say = (msg) => { const l = `LAB: [${up()} s] ${msg}`; console.log(l); toConsole(l); };

function result(scenario, data) {
  const line = JSON.stringify({ scenario, ...data });
  appendFileSync(join(OUT, 'results.jsonl'), line + '\n');
  console.log(`LAB-RESULT ${line}`);
  toConsole(`LAB-RESULT ${line}`);
}

function run(cmd, args, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    const started = performance.now();
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: performance.now() - started });
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(probe, timeoutMs, stepMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(stepMs);
  }
}

async function dig(name, timeS = BOOT_S) {
  const r = await run('dig', ['@127.0.0.1', '-p', '53', name, 'A', `+time=${timeS}`, '+tries=1', '+noall', '+answer', '+comments'], (timeS + 10) * 1000);
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? (r.code === 9 ? 'TIMEOUT' : `dig-exit-${r.code}`);
  const answer = /\sIN\s+A\s+([0-9.]+)/.exec(r.stdout)?.[1] ?? null;
  return { status, answer, ms: Math.round(r.ms) };
}

async function curl(url, maxS = 10) {
  const r = await run('curl', ['-s', '-S', '-m', String(maxS), '-o', '-', '-w', '\\n%{time_connect} %{time_starttransfer}', url], (maxS + 5) * 1000);
  const lines = r.stdout.split('\n');
  const timing = (lines.pop() ?? '').split(' ').map(Number);
  return { ok: r.code === 0, body: lines.join('\n'), code: r.code, connectS: timing[0], firstByteS: timing[1], err: r.stderr.trim().slice(0, 300) };
}

async function curlPage(url, attempts = 3) {
  let r;
  for (let i = 0; i < attempts; i++) {
    r = await curl(url, 20);
    if (r.ok) return { ...r, attempts: i + 1 };
  }
  return { ...r, attempts };
}

async function xlList() {
  const r = await run('/usr/sbin/xl', ['list']);
  const domains = {};
  for (const line of r.stdout.split('\n').slice(1)) {
    const m = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([rbpscd-]{6})/.exec(line);
    if (m) domains[m[1]] = { domid: Number(m[2]), flags: m[5] };
  }
  return domains;
}
const guests = async () => Object.keys(await xlList()).filter((n) => n !== 'Domain-0');

function xlCallLines() {
  return existsSync(XL_CALLS) ? readFileSync(XL_CALLS, 'utf8').split('\n').filter(Boolean) : [];
}
const xlCalls = () => xlCallLines().map((l) => l.split(' ').slice(1).join(' '));
const count = (verb) => xlCalls().filter((c) => c.split(' ')[0] === verb).length;
function firstCallTime(verb, after = 0) {
  for (const l of xlCallLines()) {
    const [ts, v] = l.split(' ');
    if (v === verb && Number(ts) * 1000 >= after) return Number(ts) * 1000;
  }
  return undefined;
}

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
  mkdirSync(SHIM_DIR, { recursive: true });
  writeFileSync(join(SHIM_DIR, 'xl'), `#!/bin/sh\necho "$(date +%s.%N) $*" >> ${XL_CALLS}\nexec /usr/sbin/xl "$@"\n`);
  chmodSync(join(SHIM_DIR, 'xl'), 0o755);
  mkdirSync('/var/lib/jitsu', { recursive: true, mode: 0o700 });

  // What xl itself does with x86's default guest type on Arm (a dry run: nothing is built).
  writeFileSync('/var/tmp/pv-probe.cfg', `name = "pvprobe"\ntype = "pv"\nkernel = "${KERNEL}"\nmemory = 64\n`);
  // Alongside the daemon's start (minutes of emulated CPU under load): the run must fit its time box.
  const probing = run('/usr/sbin/xl', ['create', '-n', '/var/tmp/pv-probe.cfg'], 120_000)
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
