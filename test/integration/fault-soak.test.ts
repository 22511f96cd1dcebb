/**
 * Fault-injection soak, bounded for CI: one real daemon (the CLI) with a process, a container
 * (crun, busybox rootfs), a QEMU microVM (the project's guest image, TCG) and a crash-looping
 * service. Clients query and fetch without a break while a seeded fault injector SIGKILLs
 * services, QEMU and the daemon itself (restarted on the same state dir: it must adopt what
 * runs), and closes the daemon's stdout/stderr under it. It asserts that every query sent while
 * the daemon ran was answered, that every killed service served again on its next query, that no
 * client waited longer than the boot timeout, and that nothing is left once the daemon exits.
 *
 * Interface prefix jfs, subnet 10.206.N.0/24. Reproduce a run with JITSU_SOAK_SEED=<seed> (printed);
 * JITSU_SOAK_SECONDS changes the length of the fault phase (default 90).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootfs } from '../helpers/container-net.js';
import { CLI, DEMO_HTTP, cleanupNetwork, freePort, haveCommand, isRoot, pidsMatching, removeDir, startDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';
import { udpQuery } from '../helpers/dns-udp.js';
import { buildGuest } from '../helpers/vm-env.js';

const run = promisify(execFile);
const canRun = isRoot() && ['dig', 'curl', 'qemu-system-x86_64', 'crun', 'nft', 'pgrep'].every(haveCommand) && existsSync(CLI);
const why = canRun ? '' : '(needs root, dig, curl, qemu-system-x86_64, crun, nft and a build: npm run build:ts)';

const PREFIX = `jfs${process.pid.toString(36).slice(-3)}`;
const BRIDGE = `${PREFIX}b`;
const SUBNET = `10.206.${1 + (process.pid % 250)}`;
const ZONE = 'jitsu.test';
const NFT_TABLE = `jitsu_synjitsu_${BRIDGE}`;

const SOAK_MS = Number(process.env['JITSU_SOAK_SECONDS'] ?? 90) * 1000;
const BOOT_TIMEOUT_S = 20;
const BOOT_TIMEOUT_MS = BOOT_TIMEOUT_S * 1000;
/** Scheduling slack on 2 shared cores, on top of the boot timeout, before a wait counts as too long. */
const WAIT_SLACK_MS = 1000;
const CURL_MAX_TIME_S = BOOT_TIMEOUT_S + WAIT_SLACK_MS / 1000 + 2;
/** A query unanswered this long is lost (the daemon answers SERVFAIL at the boot timeout). */
const QUERY_TIMEOUT_MS = BOOT_TIMEOUT_MS + 3000;
/** Between the end of one fault's recovery and the next fault. */
const FAULT_GAP_MS: readonly [number, number] = [1500, 4000];
const MAX_FAULTS = 40;
/** UDP streams send the next query this long after the previous answer: every fault window sees queries, and the TCG guest still gets a core. */
const STREAM_GAP_MS = 2;
const MAX_QUERIES_PER_STREAM = 100_000;
const MAX_HTTP_ROUNDS = 20_000;
/** The crash-looping service's start limit. */
const CRASH_BURST = 2;
const CRASH_COOLDOWN_S = 3;

type Kind = 'process' | 'container' | 'qemu';
interface Served {
  name: string;
  kind: Kind;
  ip: string;
  body: (text: string) => boolean;
}
const P: Served = { name: `${PREFIX}p`, kind: 'process', ip: `${SUBNET}.10`, body: (t) => t.includes(`hello-${PREFIX}p`) };
const C: Served = { name: `${PREFIX}c`, kind: 'container', ip: `${SUBNET}.11`, body: (t) => t === 'hello from a jitsu container\n' };
const Q: Served = { name: `${PREFIX}q`, kind: 'qemu', ip: `${SUBNET}.12`, body: (t) => t === `jitsu guest ${PREFIX}q\n` };
const X = { name: `${PREFIX}x`, ip: `${SUBNET}.13` };
const SERVED: readonly Served[] = [P, C, Q];
const fqdn = (service: string): string => `${service}.${ZONE}`;

const FAULT_KINDS = ['kill-process', 'kill-container', 'kill-qemu', 'kill-daemon', 'close-pipes'] as const;
type FaultKind = (typeof FAULT_KINDS)[number];
const VICTIM: Record<'kill-process' | 'kill-container' | 'kill-qemu', Served> = { 'kill-process': P, 'kill-container': C, 'kill-qemu': Q };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const elapsedS = (t0: number): string => ((performance.now() - t0) / 1000).toFixed(1);

/** mulberry32: small, seedable, good enough to pick faults reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ServiceStatus {
  service: string;
  state: string;
  pid: number | null;
  bootCount: number;
  bootFailures: number;
  exits: number;
  lastError: string | null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The daemon under test and its up/down history. Clients take a lease when they send: its signal
 * fires when this daemon goes away, with reason `planned` (our SIGKILL: what was in flight is not
 * counted) or `died` (it ended by itself: what was in flight is lost).
 */
class DaemonUnderTest {
  current: DaemonProcess | undefined;
  instance = 0;
  up = false;
  pipesClosed = false;
  readonly unexpectedExits: string[] = [];
  /** What each instance logged until it exited (or until its pipes were closed). */
  readonly instanceLogs: string[] = [];
  private expectingExit = false;
  private lifetime = new AbortController();
  private operation: Promise<unknown> = Promise.resolve();
  private upWaiters = new Set<() => void>();

  constructor(
    private readonly services: string[],
    private readonly args: string[],
    readonly port: number,
    readonly metricsPort: number,
    readonly stateDir: string,
  ) {}

  lease(): { signal: AbortSignal; instance: number } {
    return { signal: this.lifetime.signal, instance: this.instance };
  }

  /** Resolves once the daemon is up (at once if it is), or after `timeoutMs`. */
  whenUp(timeoutMs: number): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.upWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.upWaiters.add(done);
    });
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const next = this.operation.then(op, op);
    this.operation = next.catch(() => undefined);
    return next;
  }

  start(): Promise<void> {
    return this.serialize(async () => {
      const d = await startDaemon({ bridge: BRIDGE, stateDir: this.stateDir, port: this.port, services: this.services, args: this.args });
      this.current = d;
      this.instance++;
      this.pipesClosed = false;
      this.expectingExit = false;
      this.lifetime = new AbortController();
      this.up = true;
      const lifetime = this.lifetime;
      const instance = this.instance;
      d.child.once('exit', (code, signal) => {
        this.instanceLogs.push(`===== daemon instance ${instance} (pid ${d.child.pid}), exit code ${code} signal ${signal} =====\n${d.logs()}`);
        if (this.expectingExit || this.current !== d) return;
        // Not our doing: a bug. What was in flight is lost, and the soak goes on with a new daemon.
        this.up = false;
        this.unexpectedExits.push(`instance ${this.instance} exited by itself (code ${code}, signal ${signal}; stdout/stderr ${this.pipesClosed ? 'closed' : 'open'}); log tail:\n${d.logs().slice(-1500)}`);
        lifetime.abort('died');
        void this.start().catch((err: unknown) => this.unexpectedExits.push(`restart after the exit failed: ${String(err)}`));
      });
      for (const w of [...this.upWaiters]) w();
    });
  }

  /** SIGKILL: what was in flight is not counted, services keep running. */
  crash(): Promise<void> {
    return this.serialize(async () => {
      const d = this.current!;
      this.expectingExit = true;
      this.up = false;
      this.lifetime.abort('planned');
      await d.kill();
    });
  }

  /** Destroy the read ends of the daemon's stdout and stderr pipes: its next write gets EPIPE. */
  closePipes(): void {
    this.current!.child.stdout!.destroy();
    this.current!.child.stderr!.destroy();
    this.pipesClosed = true;
  }

  /** SIGTERM and the exit code. */
  stop(): Promise<number | null> {
    return this.serialize(async () => {
      const d = this.current!;
      this.expectingExit = true;
      this.up = false;
      this.lifetime.abort('planned');
      return d.stop();
    });
  }

  running(): boolean {
    const c = this.current?.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  async status(): Promise<ServiceStatus[]> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/status`, { signal: AbortSignal.timeout(3000) });
    return ((await res.json()) as { services: ServiceStatus[] }).services;
  }

  async serviceStatus(service: string): Promise<ServiceStatus | undefined> {
    return (await this.status().catch(() => [])).find((s) => s.service === service);
  }
}

/** Fault windows per service: a request overlapping one may fail without blame. */
class FaultWindows {
  private readonly open = new Map<string, number>();
  private readonly epoch = new Map<string, number>();
  openFor(services: readonly string[]): void {
    for (const s of services) {
      this.open.set(s, (this.open.get(s) ?? 0) + 1);
      this.epoch.set(s, (this.epoch.get(s) ?? 0) + 1);
    }
  }
  closeFor(services: readonly string[]): void {
    for (const s of services) this.open.set(s, Math.max(0, (this.open.get(s) ?? 0) - 1));
  }
  mark(service: string): { open: boolean; epoch: number } {
    return { open: (this.open.get(service) ?? 0) > 0, epoch: this.epoch.get(service) ?? 0 };
  }
  /** Was a window open at `since`, opened since, or open now? */
  overlapped(service: string, since: { open: boolean; epoch: number }): boolean {
    const now = this.mark(service);
    return since.open || now.open || now.epoch !== since.epoch;
  }
}

interface Tallies {
  faults: Record<FaultKind, number>;
  recovered: Record<FaultKind, number>;
  queriesSent: number;
  answered: number;
  noerror: number;
  servfail: number;
  /** In flight when we killed the daemon, or sent by dig while it was down: not counted. */
  excused: number;
  lost: number;
  requestsServed: number;
  requestsFailed: number;
  requestsFailedInFaultWindow: number;
  maxQueryWaitMs: number;
  maxRequestWaitMs: number;
  crashLoopAnswers: number;
  crashLoopFailedSeen: number;
  daemonInstances: number;
}

const zero = (): Record<FaultKind, number> => Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;

/** Processes this test's daemon started, found by what they carry: the state dir, the demo marker, the tap, the container's env marker. */
function leftoverProcesses(stateDir: string): string[] {
  const found: string[] = [];
  const markers = [stateDir, `hello-${PREFIX}`, `${PREFIX}qt`];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1').replace(/\0/g, ' ').trim();
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (cmdline === '') continue; // kernel thread or zombie
      if (markers.some((m) => cmdline.includes(m)) || environ.includes(`JFS_SOAK=${PREFIX}\0`)) found.push(`${entry}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe.skipIf(!canRun)(`fault soak: process, container, QEMU and a crash loop under SIGKILLs, daemon restarts and closed pipes ${why}`, () => {
  let stateDir = '';
  let ctl: DaemonUnderTest | undefined;

  beforeAll(async () => {
    stateDir = tempDir('jitsu-soak-');
  }, 10_000);

  afterAll(async () => {
    if (!canRun) return;
    // After a failure anything may still run: the daemon, then whatever it started.
    if (ctl?.running()) await ctl.current!.kill();
    for (const line of leftoverProcesses(stateDir)) {
      try {
        process.kill(Number(line.split(':')[0]), 'SIGKILL');
      } catch {
        // gone
      }
    }
    await run('crun', [`--root=${join(stateDir, 'run', C.name, 'crun')}`, 'delete', '--force', `jitsu-${C.name}`]).catch(() => undefined);
    await cleanupNetwork(PREFIX);
    for (const family of ['bridge', 'ip']) await run('nft', ['delete', 'table', family, NFT_TABLE]).catch(() => undefined);
    removeDir(stateDir);
  }, 60_000);

  it('answers every query, serves every killed service again, waits no longer than the boot timeout, and leaves nothing behind', async () => {
    const t0 = performance.now();
    const seed = process.env['JITSU_SOAK_SEED'] !== undefined ? Number(process.env['JITSU_SOAK_SEED']) : Math.floor(Math.random() * 2 ** 32);
    console.log(`[fault-soak] seed=${seed} (JITSU_SOAK_SEED=${seed} reproduces the fault schedule), soak ${SOAK_MS / 1000} s, prefix ${PREFIX}, subnet ${SUBNET}.0/24`);
    const random = prng(seed);
    const between = ([lo, hi]: readonly [number, number]): number => lo + random() * (hi - lo);

    const [guest, busybox] = await Promise.all([buildGuest(), Promise.resolve(rootfs('busybox'))]);
    // Victims get a start limit they cannot reach: the crash-loop guard is X's to show, and a
    // victim killed often must still come back on its next query.
    const victimLimit = 'start_limit_burst=1000';
    const services = [
      `name=${P.name},dns=${fqdn(P.name)},ip=${P.ip},port=80,exec="${process.execPath} ${DEMO_HTTP} --port 80 --message hello-${P.name}",${victimLimit}`,
      `name=${C.name},dns=${fqdn(C.name)},ip=${C.ip},backend=container,mask=none,rootfs=${busybox},exec=/bin/httpd -f -p 80 -h /www,port=80,env=JFS_SOAK=${PREFIX},${victimLimit}`,
      `name=${Q.name},dns=${fqdn(Q.name)},ip=${Q.ip},backend=qemu,tap=${PREFIX}qt,kernel=${guest.stock},initrd=${guest.initrd},${victimLimit}`,
      `name=${X.name},dns=${fqdn(X.name)},ip=${X.ip},ready=tcp:8080,exec="sh -c 'exit 3'",start_limit_burst=${CRASH_BURST},start_limit_interval=60,cooldown=${CRASH_COOLDOWN_S}`,
    ];
    const metricsPort = await freePort();
    const args = ['-f', '0.0.0.0', '--boot-timeout', String(BOOT_TIMEOUT_S), '-d', '0', '--metrics', `127.0.0.1:${metricsPort}`];
    const daemon = new DaemonUnderTest(services, args, await freePort(), metricsPort, stateDir);
    ctl = daemon;
    await daemon.start();

    const tally: Tallies = {
      faults: zero(),
      recovered: zero(),
      queriesSent: 0,
      answered: 0,
      noerror: 0,
      servfail: 0,
      excused: 0,
      lost: 0,
      requestsServed: 0,
      requestsFailed: 0,
      requestsFailedInFaultWindow: 0,
      maxQueryWaitMs: 0,
      maxRequestWaitMs: 0,
      crashLoopAnswers: 0,
      crashLoopFailedSeen: 0,
      daemonInstances: 1,
    };
    /** Each a precise account of one broken promise of the daemon; the test fails if any is here. */
    const lostQueries: string[] = [];
    const wrongAnswers: string[] = [];
    const longWaits: string[] = [];
    const notRecovered: string[] = [];
    const notAdopted: string[] = [];
    const unblamedRequestFailures: string[] = [];
    /** Requests that failed while a fault was under way: allowed, but printed (how long did they hang?). */
    const blamedRequestFailures: string[] = [];
    const crashLoopViolations: string[] = [];
    const windows = new FaultWindows();
    const soakEnd = performance.now() + SOAK_MS;
    const at = (): string => `t=${elapsedS(t0)}s`;

    /** Books one query's outcome. `expected`: the address a NOERROR must carry, or undefined when only SERVFAIL is right. */
    const book = (
      source: string,
      name: string,
      lease: { signal: AbortSignal; instance: number },
      outcome: { kind: 'answer'; rcode: string; addresses: string[]; ms: number } | { kind: 'none'; why: string; ms: number },
      expected: string | undefined,
    ): void => {
      // In flight when we killed the daemon (or the answer came from another instance): not counted.
      if (lease.signal.aborted && lease.signal.reason === 'planned') {
        tally.excused++;
        return;
      }
      tally.queriesSent++;
      if (outcome.kind === 'none') {
        tally.lost++;
        if (lostQueries.length < 20) lostQueries.push(`${at()} ${source} ${name}: ${outcome.why} after ${outcome.ms.toFixed(0)} ms (daemon instance ${lease.instance}${lease.signal.aborted ? ', which died by itself' : ''})`);
        return;
      }
      tally.answered++;
      tally.maxQueryWaitMs = Math.max(tally.maxQueryWaitMs, outcome.ms);
      if (outcome.ms > BOOT_TIMEOUT_MS + WAIT_SLACK_MS) longWaits.push(`${at()} ${source} query ${name}: answered ${outcome.rcode} after ${outcome.ms.toFixed(0)} ms`);
      if (outcome.rcode === 'SERVFAIL') tally.servfail++;
      else if (outcome.rcode === 'NOERROR') tally.noerror++;
      if (name === fqdn(X.name)) tally.crashLoopAnswers++;
      const right = outcome.rcode === 'SERVFAIL' || (outcome.rcode === 'NOERROR' && expected !== undefined && outcome.addresses.includes(expected));
      if (!right && wrongAnswers.length < 20) wrongAnswers.push(`${at()} ${source} ${name}: ${outcome.rcode} ${JSON.stringify(outcome.addresses)} (expected ${expected ?? 'SERVFAIL only'})`);
    };

    /** Real dig, one query (+tries=1), bounded. */
    const digOnce = async (name: string, signal?: AbortSignal): Promise<{ kind: 'answer'; rcode: string; addresses: string[]; ms: number } | { kind: 'none'; why: string; ms: number }> => {
      const started = performance.now();
      try {
        const { stdout } = await run('dig', [`@127.0.0.1`, '-p', String(daemon.port), name, 'A', `+time=${Math.ceil(QUERY_TIMEOUT_MS / 1000)}`, '+tries=1', '+nocookie'], {
          timeout: QUERY_TIMEOUT_MS + 5000,
          ...(signal ? { signal } : {}),
        });
        const rcode = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
        const addresses = [...stdout.matchAll(/^\S+\s+\d+\s+IN\s+A\s+(\S+)$/gm)].map((m) => m[1]!);
        return { kind: 'answer', rcode, addresses, ms: performance.now() - started };
      } catch (err) {
        const e = err as { stdout?: string; message: string };
        return { kind: 'none', why: `dig: ${(e.stdout ?? '').trim().split('\n').pop() || e.message}`, ms: performance.now() - started };
      }
    };

    const curlOnce = async (ip: string): Promise<{ ok: boolean; body: string; ms: number; error?: string }> => {
      const started = performance.now();
      try {
        // Cut off a little past the boot timeout, so that a client that would hang longer shows as one.
        const { stdout } = await run('curl', ['-sS', '--max-time', String(CURL_MAX_TIME_S), `http://${ip}/`], { timeout: CURL_MAX_TIME_S * 1000 + 5000 });
        return { ok: true, body: stdout, ms: performance.now() - started };
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        return { ok: false, body: '', ms: performance.now() - started, error: (e.stderr ?? e.message).trim() };
      }
    };

    /** The service's next query (real dig) boots it if needed, and a curl right after gets its page, all within the boot timeout. */
    const servedAgain = async (svc: Served): Promise<{ ok: boolean; ms: number; detail: string }> => {
      const started = performance.now();
      const lease = daemon.lease();
      const answer = await digOnce(fqdn(svc.name));
      book('injector-dig', fqdn(svc.name), lease, answer, svc.ip);
      if (answer.kind !== 'answer' || answer.rcode !== 'NOERROR') return { ok: false, ms: performance.now() - started, detail: `dig: ${answer.kind === 'answer' ? answer.rcode : answer.why}` };
      const page = await curlOnce(svc.ip);
      const ms = performance.now() - started;
      if (!page.ok || !svc.body(page.body)) return { ok: false, ms, detail: `curl: ${page.error ?? JSON.stringify(page.body)}` };
      if (ms > BOOT_TIMEOUT_MS + WAIT_SLACK_MS) return { ok: false, ms, detail: `served only after ${ms.toFixed(0)} ms` };
      return { ok: true, ms, detail: '' };
    };

    /** Poll /status (bounded) until `cond` holds for the service. */
    const waitFor = async (service: string, cond: (s: ServiceStatus) => boolean, timeoutMs: number): Promise<ServiceStatus | undefined> => {
      const end = performance.now() + timeoutMs;
      while (performance.now() < end) {
        const s = await daemon.serviceStatus(service);
        if (s && cond(s)) return s;
        await sleep(5);
      }
      return undefined;
    };

    // Everything boots once before the first fault, so the first faults find them running.
    for (const svc of SERVED) {
      const first = await servedAgain(svc);
      expect(first, `${svc.name} serves its first query`).toMatchObject({ ok: true });
    }
    console.log(`[fault-soak] ${at()} all services served once; soak starts`);

    // --- Clients -----------------------------------------------------------------------------
    const dnsStream = async (name: string, expected: string | undefined): Promise<void> => {
      for (let i = 0; i < MAX_QUERIES_PER_STREAM && performance.now() < soakEnd; i++) {
        if (!daemon.up) {
          await daemon.whenUp(2000);
          continue;
        }
        const lease = daemon.lease();
        const r = await udpQuery({ port: daemon.port, name, timeoutMs: QUERY_TIMEOUT_MS, signal: lease.signal });
        if (r.kind === 'answer') book('udp', name, lease, r, expected);
        else if (r.kind === 'aborted') book('udp', name, lease, { kind: 'none', why: `daemon went away (${String(r.reason)})`, ms: r.ms }, expected);
        else book('udp', name, lease, { kind: 'none', why: r.kind === 'timeout' ? 'no answer' : r.message, ms: r.ms }, expected);
        await sleep(STREAM_GAP_MS);
      }
    };

    const httpLoop = async (svc: Served): Promise<void> => {
      for (let i = 0; i < MAX_HTTP_ROUNDS && performance.now() < soakEnd; i++) {
        if (!daemon.up) {
          await daemon.whenUp(2000);
          continue;
        }
        const lease = daemon.lease();
        const mark = windows.mark(svc.name);
        const answer = await digOnce(fqdn(svc.name), lease.signal);
        book('dig', fqdn(svc.name), lease, answer, svc.ip);
        if (answer.kind !== 'answer' || answer.rcode !== 'NOERROR') continue;
        const page = await curlOnce(svc.ip);
        tally.maxRequestWaitMs = Math.max(tally.maxRequestWaitMs, page.ms);
        // Faults of a service do not excuse a hang: its clients get an answer or a RST in time. Only
        // connections the killed daemon itself held (masking) may die with it unannounced.
        if (page.ms > BOOT_TIMEOUT_MS + WAIT_SLACK_MS && !lease.signal.aborted) {
          longWaits.push(`${at()} curl ${svc.ip} (${svc.name}) ${page.ok ? 'served' : `failed: ${page.error}`} after ${page.ms.toFixed(0)} ms${windows.overlapped(svc.name, mark) ? ' (a fault of this service was under way)' : ''}`);
        }
        if (page.ok && svc.body(page.body)) {
          tally.requestsServed++;
          continue;
        }
        tally.requestsFailed++;
        const failure = `${at()} curl ${svc.ip} (${svc.name}) after NOERROR: ${page.error ?? JSON.stringify(page.body)} after ${page.ms.toFixed(0)} ms`;
        if (windows.overlapped(svc.name, mark) || lease.signal.aborted) {
          tally.requestsFailedInFaultWindow++;
          if (blamedRequestFailures.length < 20) blamedRequestFailures.push(failure);
        }
        else if (unblamedRequestFailures.length < 20) unblamedRequestFailures.push(`${failure} (no fault near)`);
      }
    };

    /** The crash-looping service queried with real dig too: SERVFAIL every time. */
    const crashLoopDigs = async (): Promise<void> => {
      for (let i = 0; i < MAX_HTTP_ROUNDS && performance.now() < soakEnd; i++) {
        if (!daemon.up) {
          await daemon.whenUp(2000);
          continue;
        }
        const lease = daemon.lease();
        book('dig', fqdn(X.name), lease, await digOnce(fqdn(X.name), lease.signal), undefined);
      }
    };

    /** Watches the crash-looping service: never up, and its boots held back by the start limit. */
    const crashLoopWatch = async (): Promise<void> => {
      let first: { instance: number; at: number; boots: number } | undefined;
      let last: typeof first;
      const check = (): void => {
        if (!first || !last || first.instance !== last.instance) return;
        const cycles = (last.at - first.at) / (CRASH_COOLDOWN_S * 1000);
        const allowed = CRASH_BURST * (Math.floor(cycles) + 2);
        if (last.boots - first.boots > allowed) crashLoopViolations.push(`instance ${first.instance}: ${last.boots - first.boots} boots in ${((last.at - first.at) / 1000).toFixed(1)} s, the start limit allows ${allowed}`);
      };
      for (let i = 0; i < 10_000 && performance.now() < soakEnd; i++) {
        await sleep(250);
        if (!daemon.up) continue;
        const instance = daemon.instance;
        const s = await daemon.serviceStatus(X.name);
        if (!s || !daemon.up || daemon.instance !== instance) continue;
        if (s.state === 'ready') crashLoopViolations.push(`${at()} the crash-looping service is ready`);
        if (s.state === 'failed') tally.crashLoopFailedSeen++;
        const sample = { instance, at: performance.now(), boots: s.bootCount };
        if (!first || first.instance !== instance) {
          check();
          first = sample;
        }
        last = sample;
      }
      check();
    };

    // --- Faults ------------------------------------------------------------------------------
    const killService = async (kind: 'kill-process' | 'kill-container' | 'kill-qemu'): Promise<void> => {
      const svc = VICTIM[kind];
      windows.openFor([svc.name]);
      try {
        // The clients keep it booted; wait for it to be up before killing it.
        const before = await waitFor(svc.name, (s) => s.state === 'ready' && s.pid !== null, BOOT_TIMEOUT_MS);
        if (!before) {
          notRecovered.push(`${at()} ${kind}: ${svc.name} never ready to be killed: ${JSON.stringify(await daemon.serviceStatus(svc.name))}`);
          return;
        }
        process.kill(before.pid!, 'SIGKILL');
        tally.faults[kind]++;
        const seen = await waitFor(svc.name, (s) => s.state !== 'ready' || s.pid !== before.pid, 2000);
        if (!seen) notRecovered.push(`${at()} ${kind}: the daemon did not see ${svc.name} (pid ${before.pid}) killed within 2 s`);
        const again = await servedAgain(svc);
        console.log(`[fault-soak] ${at()} ${kind} pid=${before.pid}: seen=${seen !== undefined}, served again ${again.ok ? `in ${again.ms.toFixed(0)} ms` : `NO (${again.detail})`}`);
        if (again.ok) tally.recovered[kind]++;
        else notRecovered.push(`${at()} ${kind}: ${svc.name} not served again on its next query: ${again.detail}; status now ${JSON.stringify(await daemon.serviceStatus(svc.name))}`);
      } finally {
        windows.closeFor([svc.name]);
      }
    };

    const killDaemon = async (): Promise<void> => {
      const all = SERVED.map((s) => s.name);
      windows.openFor(all);
      try {
        const before = (await daemon.status().catch(() => [])).filter((s) => s.state === 'ready' && s.pid !== null);
        const pid = daemon.current!.child.pid;
        await daemon.crash();
        tally.faults['kill-daemon']++;
        const downMs = between([0, 1500]);
        await sleep(downMs);
        await daemon.start();
        tally.daemonInstances++;
        // What ran before must be adopted: ready, the same pid, no second boot.
        const after = await daemon.status().catch(() => []);
        for (const b of before) {
          if (!alive(b.pid!)) continue;
          const a = after.find((s) => s.service === b.service);
          if (!a || a.state !== 'ready' || a.pid !== b.pid) notAdopted.push(`${at()} ${b.service} pid ${b.pid} still ran, but the restarted daemon has it ${a ? `${a.state} pid ${a.pid}` : 'missing'}`);
        }
        const again = await Promise.all(SERVED.map(servedAgain));
        const duplicates = await pidsMatching(`hello-${P.name}`);
        if (duplicates.length > 1) notAdopted.push(`${at()} ${duplicates.length} copies of ${P.name} run after the restart: ${duplicates.join(' ')}`);
        console.log(`[fault-soak] ${at()} kill-daemon pid=${pid}, down ${downMs.toFixed(0)} ms, adopted ${before.map((b) => b.service).join(',') || 'none'}; served again: ${again.map((a, i) => `${SERVED[i]!.kind}=${a.ok ? `${a.ms.toFixed(0)}ms` : a.detail}`).join(' ')}`);
        if (again.every((a) => a.ok)) tally.recovered['kill-daemon']++;
        again.forEach((a, i) => {
          if (!a.ok) notRecovered.push(`${at()} kill-daemon: ${SERVED[i]!.name} not served after the restart: ${a.detail}`);
        });
        const statusNow = await daemon.status().catch(() => []);
        again.forEach((a, i) => {
          if (!a.ok) notRecovered.push(`${at()}   status of ${SERVED[i]!.name}: ${JSON.stringify(statusNow.find((s) => s.service === SERVED[i]!.name))}`);
        });
      } finally {
        windows.closeFor(all);
      }
    };

    const closePipes = async (): Promise<void> => {
      const instance = daemon.instance;
      daemon.closePipes();
      tally.faults['close-pipes']++;
      // The crash-looping service logs a boot and its failure at least once per cool-down: give
      // the daemon that long to write into the closed pipes, then it must still serve.
      await sleep(CRASH_COOLDOWN_S * 1000 + 1000);
      const survived = daemon.running() && daemon.instance === instance;
      const again = await servedAgain(P);
      console.log(`[fault-soak] ${at()} close-pipes: daemon ${survived ? 'still running' : 'DIED'}, served again ${again.ok ? 'yes' : `NO (${again.detail})`}`);
      if (survived && again.ok) tally.recovered['close-pipes']++;
      else notRecovered.push(`${at()} close-pipes: ${survived ? '' : 'the daemon died after its stdout/stderr were closed; '}${again.ok ? '' : again.detail}`);
    };

    const injector = async (): Promise<void> => {
      // Every kind once, in a seeded order, then seeded picks.
      const deck: FaultKind[] = [...FAULT_KINDS];
      for (let i = deck.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [deck[i], deck[j]] = [deck[j]!, deck[i]!];
      }
      for (let step = 0; step < MAX_FAULTS && performance.now() < soakEnd; step++) {
        await sleep(between(FAULT_GAP_MS));
        if (performance.now() >= soakEnd) break;
        let kind: FaultKind = step < deck.length ? deck[step]! : FAULT_KINDS[Math.floor(random() * FAULT_KINDS.length)]!;
        // One close per daemon instance: a closed pipe cannot be closed again.
        if (kind === 'close-pipes' && daemon.pipesClosed) kind = 'kill-daemon';
        if (!daemon.up) await daemon.whenUp(BOOT_TIMEOUT_MS);
        if (kind === 'kill-daemon') await killDaemon();
        else if (kind === 'close-pipes') await closePipes();
        else await killService(kind);
      }
    };

    await Promise.all([
      injector(),
      crashLoopWatch(),
      ...SERVED.map((s) => dnsStream(fqdn(s.name), s.ip)),
      dnsStream(fqdn(X.name), undefined),
      ...SERVED.map(httpLoop),
      crashLoopDigs(),
    ]);

    // --- The end: a clean exit must leave nothing ----------------------------------------------
    const exitCode = await daemon.stop();
    const soakS = elapsedS(t0);
    const netns = (await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.includes(`jitsu-${PREFIX}`));
    const links = (await run('ip', ['-o', 'link'])).stdout
      .split('\n')
      .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined && n.startsWith(PREFIX));
    const processes = leftoverProcesses(stateDir);
    const pgrepDemo = (await run('pgrep', ['-f', `hello-${PREFIX}`]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    const tables = (await run('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.includes(NFT_TABLE));

    console.log(
      [
        `[fault-soak] seed=${seed} wall ${soakS} s, daemon instances ${tally.daemonInstances}, final exit code ${exitCode}`,
        `  faults injected: ${FAULT_KINDS.map((k) => `${k}=${tally.faults[k]}`).join(' ')}`,
        `  recovered:       ${FAULT_KINDS.map((k) => `${k}=${tally.recovered[k]}`).join(' ')}`,
        `  queries: sent ${tally.queriesSent} (counted), answered ${tally.answered} (NOERROR ${tally.noerror}, SERVFAIL ${tally.servfail}), lost ${tally.lost}, not counted (daemon killed under them) ${tally.excused}`,
        `  crash loop: ${tally.crashLoopAnswers} answers, seen failed ${tally.crashLoopFailedSeen} times`,
        `  requests: served ${tally.requestsServed}, failed ${tally.requestsFailed} (${tally.requestsFailedInFaultWindow} overlapping a fault)`,
        `  longest wait: query ${tally.maxQueryWaitMs.toFixed(0)} ms, request ${tally.maxRequestWaitMs.toFixed(0)} ms (boot timeout ${BOOT_TIMEOUT_MS} ms)`,
        ...blamedRequestFailures.map((f) => `  failed during a fault: ${f}`),
        `  leftovers: netns ${netns.length}, links ${links.length}, processes ${processes.length}, nft tables ${tables.length}`,
      ].join('\n'),
    );

    const broken = [daemon.unexpectedExits, lostQueries, wrongAnswers, notRecovered, notAdopted, longWaits, unblamedRequestFailures, crashLoopViolations, processes].some((l) => l.length > 0);
    if (broken) {
      // The daemon's own account, for the report: every instance's log up to its exit (or its closed pipes).
      const logFile = join(tmpdir(), `jitsu-soak-${seed}.log`);
      writeFileSync(logFile, daemon.instanceLogs.join('\n'));
      console.log(`[fault-soak] daemon logs: ${logFile}`);
    }

    // Every promise at once, so one failure does not hide the others.
    expect.soft(daemon.unexpectedExits, 'the daemon never exits by itself').toEqual([]);
    expect.soft(lostQueries, 'every query sent while the daemon ran got an answer').toEqual([]);
    expect.soft(tally.lost).toBe(0);
    expect.soft(wrongAnswers, 'answers are NOERROR with the service address, or SERVFAIL').toEqual([]);
    expect.soft(notRecovered, 'every killed service serves again on its next query').toEqual([]);
    expect.soft(notAdopted, 'a restarted daemon adopts what still runs').toEqual([]);
    expect.soft(longWaits, 'no client waits longer than the boot timeout').toEqual([]);
    expect.soft(unblamedRequestFailures, 'a request after a NOERROR answer, with no fault near, is served').toEqual([]);
    expect.soft(crashLoopViolations, 'the crash-looping service is never up and its boots are held by the start limit').toEqual([]);
    expect.soft(tally.crashLoopFailedSeen, 'the crash-looping service reached failed').toBeGreaterThan(0);
    expect.soft(FAULT_KINDS.filter((k) => tally.faults[k] === 0), 'every kind of fault was injected').toEqual([]);
    expect.soft(tally.requestsServed).toBeGreaterThan(0);
    expect.soft(exitCode, 'SIGTERM: clean exit').toBe(0);
    expect.soft(netns, 'no netns left').toEqual([]);
    expect.soft(links, 'no link or tap left').toEqual([]);
    expect.soft(processes, 'no service process left').toEqual([]);
    expect.soft(pgrepDemo, 'pgrep finds no demo server').toEqual([]);
    expect.soft(tables, 'no nft table left').toEqual([]);
  }, 225_000);
});

/**
 * The soak's first finding, on its own and deterministic: queries that arrive while the daemon
 * cleans up after a killed service (state `stopping`) must share one boot. Each round kills the
 * service, then sends a query every millisecond for 600 ms (five rounds: the window is a few ms).
 */
describe.skipIf(!canRun)(`fault soak, reduced: queries during the cleanup after a kill ${why}`, () => {
  let d: DaemonProcess | undefined;
  afterAll(async () => {
    await d?.stop();
    await cleanupNetwork(PREFIX);
  }, 60_000);

  it('start exactly one boot, and every one of them is answered NOERROR', async () => {
    const name = `${PREFIX}r`;
    d = await startDaemon({
      bridge: `${PREFIX}rb`,
      metrics: true,
      args: ['-f', '0.0.0.0', '-d', '0', '--boot-timeout', String(BOOT_TIMEOUT_S)],
      services: [`name=${name},dns=${fqdn(name)},ip=10.206.${1 + ((process.pid + 1) % 250)}.10,port=80,exec="${process.execPath} ${DEMO_HTTP} --port 80 --message hello-${name}",start_limit_burst=1000`],
    });
    const daemonUnderTest = d;
    const query = (): ReturnType<typeof udpQuery> => udpQuery({ port: daemonUnderTest.port, name: fqdn(name), timeoutMs: QUERY_TIMEOUT_MS });
    const status = async (): Promise<ServiceStatus> =>
      ((await (await fetch(`http://127.0.0.1:${daemonUnderTest.metricsPort}/status`)).json()) as { services: ServiceStatus[] }).services[0]!;
    expect(await query()).toMatchObject({ kind: 'answer', rcode: 'NOERROR' });
    for (let round = 0; round < 5; round++) {
      const before = await status();
      expect(before, `round ${round}: ready before the kill`).toMatchObject({ state: 'ready', pid: expect.any(Number) });
      const from = daemonUnderTest.logs().length;
      process.kill(before.pid!, 'SIGKILL');
      const answers: Promise<Awaited<ReturnType<typeof udpQuery>>>[] = [];
      const t0 = performance.now();
      for (let i = 0; i < 1000 && performance.now() - t0 < 600; i++) {
        answers.push(query());
        await sleep(1);
      }
      const rcodes: Record<string, number> = {};
      for (const a of await Promise.all(answers)) {
        const key = a.kind === 'answer' ? a.rcode : a.kind;
        rcodes[key] = (rcodes[key] ?? 0) + 1;
      }
      const boots = (daemonUnderTest.logs().slice(from).match(/msg=booting service=/g) ?? []).length;
      const after = await status();
      const running = await pidsMatching(`hello-${name}`);
      console.log(`[fault-soak reduced] round ${round}: ${boots} boot(s) after one kill; answers ${JSON.stringify(rcodes)}; then ${after.state} pid ${after.pid}, running ${JSON.stringify(running)}`);
      // One boot, all answers NOERROR, and the one copy that runs is the one the daemon knows of.
      expect({ boots, rcodes, state: after.state, running }, `round ${round}`).toEqual({ boots: 1, rcodes: { NOERROR: answers.length }, state: 'ready', running: [after.pid] });
    }
  }, 60_000);
});
