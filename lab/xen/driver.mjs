// The xl-on-Xen scenarios, run inside the Xen lab's dom0 by lab/xen/dom0.sh (test/integration/xl-xen.test.ts
// boots the lab and asserts on what this records). Everything here is the real thing: `jitsu -x xl` from the
// checkout, Xen's xl, Debian's dig and curl. Every wait is bounded.
// Each scenario's observations go to /out/results.jsonl and the console as `LAB-RESULT {json}`.
// Plain JavaScript (no build step): it runs from the 9p share with dom0's node.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHIM_DIR, XL, curl, curlPage, dig as digFor, labRecord, run, sleep, waitFor, xlList } from '../common/xl-lab.mjs';

const src = process.argv[2];
const OUT = '/out';
const BRIDGE = 'jitsu0';
const GUEST_IP = '10.77.5.10';
const NAME = 'www.xen.test';
const KERNEL = '/lab/vmlinux';
const INITRD = '/lab/domU.cpio';
// Waits sized for a loaded 2-core TCG host: an xl create plus the guest's boot took 90-150 s with the
// machine's cores shared three ways (20-40 s alone).
const BOOT_S = 300;
// Longer than a few dom0 steps (each dig, curl or xl call costs 1-10 s of emulated dom0 time).
const IDLE_S = 20;
const IDLE_B_S = 45;
const SWEEP_S = 2;

const { up, say, result, installShim, xlCalls, count, firstCallTime } = labRecord(OUT);
const dig = (name, timeS = BOOT_S) => digFor(name, timeS);

function synRetrans() {
  const text = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < text.length; i += 2) {
    if (!text[i].startsWith('TcpExt:')) continue;
    const keys = text[i].split(/\s+/);
    const vals = text[i + 1].split(/\s+/);
    return Number(vals[keys.indexOf('TCPSynRetrans')]);
  }
  return NaN;
}

async function metricsText() {
  const r = await run('curl', ['-s', '-m', '5', 'http://127.0.0.1:9153/metrics']);
  return r.stdout;
}

let daemon;
let daemonLog = '';
const logText = () => (existsSync(daemonLog) ? readFileSync(daemonLog, 'utf8') : '');

const HIB_IP = '10.77.5.13';
const HIB_NAME = 'hib.xen.test';
const HIB_SERVICE = `dns=${HIB_NAME},name=hib,ip=${HIB_IP},kernel=${KERNEL},initrd=${INITRD},memory=131072,stop=hibernate,cmdline="console=hvc0 quiet jitsu.ip=${HIB_IP}/24 jitsu.name=hib"`;
const www = (extra = '') =>
  `dns=${NAME},name=www,ip=${GUEST_IP},kernel=${KERNEL},initrd=${INITRD},memory=131072,cmdline="console=hvc0 quiet jitsu.ip=${GUEST_IP}/24 jitsu.name=www"${extra}`;

async function startDaemon(tag, mode, services, idleS = IDLE_S) {
  daemonLog = join(OUT, `daemon-${tag}.log`);
  const args = [join(src, 'dist/src/cli/main.js'), '-x', 'xl', '-b', '127.0.0.1', '-l', '53', '-f', '0.0.0.0', '-t', '5', '-d', '0',
    '--idle-timeout', String(idleS), '--sweep-interval', String(SWEEP_S), '--boot-timeout', String(BOOT_S), '-m', mode,
    // One backend worker: each thread loads the backends (tens of seconds of emulated CPU at start).
    '--workers', '1', '--state', '/var/lib/jitsu', '--bridge', BRIDGE, '--metrics', '127.0.0.1:9153', '--log-file', daemonLog, '--log-level', 'debug', ...services];
  daemon = spawn('node', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PATH: `${SHIM_DIR}:${process.env.PATH}` } });
  const t = Date.now();
  // Up = it logged "jitsu ready" (polling the file is cheap; a dig probe costs seconds of dom0 CPU).
  const ok = await waitFor(() => (daemon.exitCode === null && /msg="jitsu ready"/.test(logText()) ? true : undefined), 240_000, 250);
  say(`daemon ${tag} (-m ${mode}) ${ok ? 'up' : 'NOT up'} after ${Date.now() - t} ms`);
  return ok;
}

async function killDaemon(signal = 'SIGKILL') {
  if (!daemon || daemon.exitCode !== null) return;
  const exited = new Promise((r) => daemon.once('exit', r));
  daemon.kill(signal);
  await Promise.race([exited, sleep(60_000)]);
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
  // A shim ahead of xl on the daemon's PATH records every xl command it runs (then execs the real xl).
  installShim();
  writeFileSync('/var/tmp/not-a-kernel', 'this is not a kernel\n'.repeat(100));
  mkdirSync('/var/lib/jitsu', { recursive: true, mode: 0o700 });

  const broken = [
    'dns=nokernel.xen.test,name=nokernel,ip=10.77.5.11,kernel=/lab/missing-kernel,memory=65536',
    'dns=badkernel.xen.test,name=badkernel,ip=10.77.5.12,kernel=/var/tmp/not-a-kernel,memory=65536',
  ];

  // ---- daemon A, -m suspend: cold start under 20 racing queries, then idle pause and unpause.
  await startDaemon('a', 'suspend', [www()]);
  await scenario('race', async () => {
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
    const answers = await Promise.all(Array.from({ length: 20 }, () => dig(NAME)));
    const answeredMs = Date.now() - started;
    const page = await curlPage(`http://${GUEST_IP}/`);
    await Promise.race([polling, sleep(30_000)]);
    const createAt = firstCallTime('create', started - 1000);
    const list = await xlList();
    result('race', {
      statuses: answers.map((a) => a.status), answers: answers.map((a) => a.answer), creates: count('create'),
      answeredMs, curl: page, domain: list['www'] ?? null,
      createToFirstByteMs: createAt !== undefined && firstByteAt !== undefined ? Math.round(firstByteAt - createAt) : null,
    });
  });
  await scenario('suspend', async () => {
    const paused = await waitFor(async () => ((await xlList())['www']?.flags.includes('p') ? true : undefined), (IDLE_S * 2 + 60) * 1000, 1000);
    const flagsWhilePaused = (await xlList())['www']?.flags ?? null;
    const curlWhilePaused = await curl(`http://${GUEST_IP}/`, 2);
    const again = await dig(NAME);
    const flagsAfter = (await xlList())['www']?.flags ?? null;
    const page = await curlPage(`http://${GUEST_IP}/`);
    result('suspend', { paused: Boolean(paused), flagsWhilePaused, curlWhilePausedOk: curlWhilePaused.ok, dig: again, flagsAfter, curl: page,
      creates: count('create'), pauses: count('pause'), unpauses: count('unpause') });
  });

  // ---- SIGKILL; daemon B, -m destroy, adopts the running domain.
  await killDaemon('SIGKILL');
  await scenario('adopt', async () => {
    const before = await xlList();
    const createsBefore = count('create');
    // A longer idle timeout: the adopted domain must outlive the slow steps up to the vanished scenario's destroy.
    await startDaemon('b', 'destroy', [www(), ...broken], IDLE_B_S);
    const answer = await dig(NAME);
    const page = await curlPage(`http://${GUEST_IP}/`);
    const after = await xlList();
    result('adopt', { domainBefore: before['www'] ?? null, domainAfter: after['www'] ?? null, dig: answer, curl: page,
      createsBefore, createsAfter: count('create'), adoptedLogged: /adopted (running|suspended) service/.test(logText()) });
  });
  await scenario('vanished', async () => {
    const createsBefore = count('create');
    // A query first restarts the idle clock, so the daemon's own idle stop cannot race the destroy below.
    await dig(NAME);
    const killed = await run(XL, ['destroy', 'www']);
    const t = Date.now();
    const noticed = await waitFor(() => (/service exited.*reason=vanished/.test(logText()) ? true : undefined), 60_000, 500);
    const noticedMs = Date.now() - t;
    const answer = await dig(NAME);
    const page = await curlPage(`http://${GUEST_IP}/`);
    result('vanished', { destroyedBehindBack: killed.code === 0, noticed: Boolean(noticed), noticedMs,
      logLine: logText().split('\n').find((l) => /service exited/.test(l)) ?? null, dig: answer, curl: page, createsBefore, createsAfter: count('create') });
  });
  await scenario('destroy', async () => {
    // Destroying a PV domain under TCG can take minutes (Xen tears down its page tables page by page).
    const gone = await waitFor(async () => ((await xlList())['www'] ? undefined : true), (IDLE_B_S + 300) * 1000, 2000);
    result('destroy', { gone: Boolean(gone), destroys: xlCalls().filter((c) => c === 'destroy www').length, stoppingLogged: /stopping.*mode=destroy/.test(logText()) });
  });
  await scenario('errors', async () => {
    const missing = await dig('nokernel.xen.test', 60);
    const bad = await dig('badkernel.xen.test', 120);
    const lines = logText().split('\n').filter((l) => /boot failed/.test(l));
    result('errors', { missing, bad, missingLog: lines.find((l) => /nokernel/.test(l)) ?? null, badLog: lines.find((l) => /badkernel/.test(l)) ?? null,
      leftover: Object.keys(await xlList()).filter((n) => n !== 'Domain-0') });
  });

  // ---- daemon C, -m shutdown, with Synjitsu handshake masking on the bridge for the domU's vif; and a second
  // service, stopped by hibernate (one daemon start less: each costs 40-80 s of emulated dom0 time).
  await killDaemon('SIGKILL');
  await scenario('masked-shutdown', async () => {
    await startDaemon('c', 'shutdown', [www(',mask=handshake'), HIB_SERVICE]);
    const createsBefore = count('create');
    const synBefore = synRetrans();
    const started = Date.now();
    const answer = await dig(NAME);
    // The client connects as soon as it has the address, while the guest is still booting.
    const page = await curl(`http://${GUEST_IP}/`, BOOT_S);
    const synAfter = synRetrans();
    const firstByteMs = Date.now() - started;
    const metrics = await metricsText();
    const handedOver = /synjitsu_connections_total\{[^}]*event="handed_over"[^}]*\}\s+(\d+)/.exec(metrics)?.[1] ?? null;
    const gone = await waitFor(async () => ((await xlList())['www'] ? undefined : true), (IDLE_S * 2 + 90) * 1000, 1000);
    const consoleLog = existsSync('/var/log/xen/console/guest-www.log') ? readFileSync('/var/log/xen/console/guest-www.log', 'utf8') : '';
    result('masked-shutdown', { dig: answer, curl: page, digToFirstByteMs: firstByteMs, synRetrans: synAfter - synBefore, handedOver,
      synjitsuMetrics: metrics.split('\n').filter((l) => l.startsWith('synjitsu_')).slice(0, 20),
      createsBefore, createsAfter: count('create'), gone: Boolean(gone), shutdowns: xlCalls().filter((c) => c.startsWith('shutdown')).length,
      guestPoweredOff: consoleLog.includes('xen shutdown request, powering off') });
  });

  // ---- daemon C's service hib, stop=hibernate: the idle stop is xl save, the next query xl restore (a counter
  // in guest RAM survives).
  await scenario('hibernate', async () => {
    const createsBefore = count('create');
    const answer = await dig(HIB_NAME);
    const first = await curlPage(`http://${HIB_IP}/cgi-bin/count`);
    const second = await curlPage(`http://${HIB_IP}/cgi-bin/count`);
    const domidBefore = (await xlList())['hib']?.domid ?? null;
    // xl save of a 128 MiB PV domain under TCG: Xen copies every page through dom0.
    // Complete once the backend wrote the .of file after xl save returned.
    const saved = await waitFor(async () => (existsSync('/var/lib/jitsu/run/hib/xl-hib.save.of') && !(await xlList())['hib'] ? true : undefined),
      (IDLE_S * 2 + 300) * 1000, 2000);
    const saveFiles = (await run('ls', ['-la', '/var/lib/jitsu/run/hib'])).stdout + (await run('df', ['-m', '/var/lib/jitsu'])).stdout;
    const resumedAt = Date.now();
    const again = await dig(HIB_NAME);
    const third = await curlPage(`http://${HIB_IP}/cgi-bin/count`);
    const resumeToCountMs = Date.now() - resumedAt;
    const domidAfter = (await xlList())['hib']?.domid ?? null;
    await killDaemon('SIGTERM');
    // Shutdown destroys the restored domain; under TCG Xen may take minutes to tear it down.
    await waitFor(async () => ((await xlList())['hib'] ? undefined : true), 300_000, 2000);
    result('hibernate', { dig: answer, counts: [first.body, second.body, third.body], domidBefore, domidAfter, saved: Boolean(saved), saveFiles,
      again, resumeToCountMs, createsBefore, createsAfter: count('create'), saves: count('save'), restores: count('restore'),
      daemonExit: daemon.exitCode, leftover: Object.keys(await xlList()).filter((n) => n !== 'Domain-0') });
  });
  result('done', { xlCalls: xlCalls().length, seconds: Number(up()) });
}

main().catch((err) => {
  result('driver', { error: String(err?.stack ?? err) });
}).finally(async () => {
  await killDaemon('SIGKILL');
  process.exit(0);
});
