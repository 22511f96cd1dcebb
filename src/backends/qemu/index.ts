/**
 * The `qemu` backend: each service is a `-M microvm` guest on a tap attached to the service bridge.
 * QEMU runs detached in its own process group and is driven over QMP, so any worker thread (or a
 * restarted daemon) can act on a handle another one created: the handle holds only paths and ids.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, chownSync, closeSync, constants, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Backend, BackendHandle, ExitReport, JsonValue, RuntimeState, ServiceSpec, StopMode } from '../backend.js';
import { abortError } from '../common/abort.js';
import { handleCodec } from '../common/handle.js';
import { describeExit } from '../common/exit-cause.js';
import { JitsuError } from '../../errors.js';
import { resolveAccel } from './accel.js';
import { buildCmdline, buildQemuArgs, hostCpuKhz, runPaths, type Accel, type QemuPrivileges, type RunPaths } from './argv.js';
import { capConsole, fileTail } from './console.js';
import { guestImageDir, parseQemuOptions, qemuOptions, type QemuConfig } from './options.js';
import { isAlive, readProcStat } from '../common/proc.js';
import { signalGroup } from '../common/process-group.js';
import { QmpClient, qmpOnce } from './qmp.js';
import { pollUntil, rxPackets, waitFirstFrame, waitTcp } from '../common/readiness.js';
import { createTap, removeTap } from './tap.js';
import { resolveIdentity, type Identity } from '../common/identity.js';

export { parseQemuOptions, qemuOptions, defaultTapName, guestImageDir } from './options.js';
export type { QemuConfig } from './options.js';
export { buildCmdline, buildQemuArgs } from './argv.js';
export { QmpClient, qmpOnce } from './qmp.js';
export { resolveAccel, probeKvm } from './accel.js';

/** How long start() waits for QEMU to create its machine and greet on QMP. */
const START_TIMEOUT_MS = 10_000;
/** How long destroy waits for QEMU to exit after `quit` before SIGKILL. */
const QUIT_GRACE_MS = 3000;

interface QemuData {
  tap: string;
  bridge: string;
  qmp: string;
  console: string;
  log: string;
  pidfile: string;
  startTime: number;
  accel: Accel;
  acpi: boolean;
  shutdownTimeoutMs: number;
  /** rx_packets of the tap when QEMU started: frames past it come from the guest. */
  rxBaseline: number;
  /** Where QEMU's exit status lands (absent in handles of older daemons). */
  exit?: string;
}

const hash8 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);

/** Every call needs QEMU's pid and start time, its QMP socket and its tap. */
const qemuHandle = handleCodec<QemuData>({ backend: 'qemu', required: { qmp: 'string', tap: 'string', startTime: 'number' }, pid: true });

function cacheRoot(): string {
  return process.env['JITSU_CACHE'] || '/var/cache/jitsu';
}

function mustRead(path: string, what: string, service: string): void {
  try {
    accessSync(path, constants.R_OK);
    if (!statSync(path).isFile()) throw new Error('not a regular file');
  } catch (err) {
    const hint = path.startsWith(guestImageDir()) ? ' (run scripts/build-guest.sh to build the guest image)' : '';
    throw new JitsuError('BOOT_FAILED', `service ${service}: ${what} ${path} is not readable: ${(err as Error).message}${hint}`, { service, [what]: path });
  }
}

function bootFailure(service: string, paths: Pick<RunPaths, 'console' | 'log'>, why: string): JitsuError {
  const qemuLog = fileTail(paths.log, 8);
  const consoleLog = fileTail(paths.console, 15);
  const cause = qemuLog.length > 0 ? qemuLog.join(' | ') : consoleLog.slice(-3).join(' | ');
  return new JitsuError('BOOT_FAILED', `service ${service}: ${why}${cause ? `: ${cause}` : ''}`, { service, qemuLog, console: consoleLog });
}

/** Wait for QMP to greet, or for QEMU to exit (a bad kernel, a missing tap, a bad flag). */
async function awaitQmp(paths: RunPaths, exited: () => string | undefined, service: string, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const gone = exited();
    if (gone !== undefined) throw bootFailure(service, paths, `QEMU exited (${gone}) before the guest started`);
    if (signal.aborted) throw abortError(signal, 'start', { timeout: `service ${service}: QEMU did not start in time`, aborted: `service ${service}: QEMU did not start in time: aborted` }, { service });
    let sockExists = false;
    try {
      sockExists = statSync(paths.qmp).isSocket();
    } catch {
      // not yet
    }
    if (sockExists) {
      try {
        const c = await QmpClient.connect(paths.qmp, 1000);
        c.close();
        return;
      } catch {
        // machine still initialising, or QEMU died: the loop finds out which
      }
    }
    if (Date.now() > deadline) throw bootFailure(service, paths, `QEMU gave no QMP greeting within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

/**
 * Started as the service user where nothing needs root: TCG (no /dev/kvm), no chroot, and a run
 * dir the user can reach (every directory above it searchable by others: the state dir is ours,
 * 0700 unless we open it). Otherwise QEMU starts as root and drops with -runas (see argv.ts).
 */
function qemuPrivileges(identity: Identity, cfg: QemuConfig, accel: Accel, runDir: string): QemuPrivileges {
  if (identity.uid === 0) return { mode: 'root' };
  if (cfg.chroot !== undefined || accel !== 'tcg') return { mode: 'runas', user: identity.user };
  // The state dir and its run/ are ours: let others search them (never list or write) so the
  // service user reaches its own run dir. Above the state dir we change nothing.
  const run = dirname(runDir);
  for (const dir of [dirname(run), run]) {
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
  }
  for (let dir = dirname(dirname(run)); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return { mode: 'runas', user: identity.user };
    if (dir === '/') return { mode: 'unprivileged' };
  }
}

function waitExit(pid: number, startTime: number, ms: number): Promise<boolean> {
  return pollUntil(() => !isAlive(pid, startTime), ms, { firstMs: 10, maxMs: 10 });
}

async function start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle> {
  const cfg: QemuConfig = parseQemuOptions(spec, hash8);
  mustRead(cfg.kernel, 'kernel', spec.service);
  if (cfg.initrd !== undefined) mustRead(cfg.initrd, 'initrd', spec.service);
  const paths = runPaths(spec.runDir);
  const verdict = await resolveAccel(cfg, cacheRoot());
  const cmdline = buildCmdline(cfg, spec.service, spec.network, hostCpuKhz(), verdict.accel);
  // A missing user fails here with the fix, not as QEMU's terse "User X doesn't exist".
  const identity = resolveIdentity(spec.service, cfg.user, undefined);
  if (cfg.chroot !== undefined && !statSync(cfg.chroot, { throwIfNoEntry: false })?.isDirectory()) {
    throw new JitsuError('BOOT_FAILED', `service ${spec.service}: chroot ${cfg.chroot} is not a directory (create it, e.g. an empty one)`, { service: spec.service, key: 'chroot' });
  }
  const privileges = qemuPrivileges(identity, cfg, verdict.accel, spec.runDir);
  const args = buildQemuArgs(cfg, cmdline, verdict.accel, paths, privileges);
  const startsAs = privileges.mode === 'unprivileged' ? { uid: identity.uid, gid: identity.gid } : undefined;

  for (const p of [paths.qmp, paths.pidfile, paths.exit]) rmSync(p, { force: true });
  writeFileSync(paths.console, '');
  if (startsAs) {
    // It creates its QMP socket and pidfile here and appends to the console: its own run dir.
    chownSync(spec.runDir, startsAs.uid, startsAs.gid);
    chownSync(paths.console, startsAs.uid, startsAs.gid);
  }
  await createTap(cfg.tap, cfg.bridge, startsAs);
  const rxBaseline = rxPackets(cfg.tap) ?? 0;

  const logFd = openSync(paths.log, 'w');
  let exitedHow: string | undefined;
  let child;
  try {
    child = spawn(cfg.binary, args, { detached: true, stdio: ['ignore', logFd, logFd], ...(startsAs ?? {}) });
  } finally {
    closeSync(logFd);
  }
  child.on('exit', (code, sig) => {
    exitedHow = sig ? `signal ${sig}` : `status ${code}`;
    // This thread is the only one that learns the status: leave it for exitReport().
    try {
      writeFileSync(paths.exit, JSON.stringify({ code, signal: sig }));
    } catch {
      // the run dir is gone (daemon shutting down)
    }
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  spawnError.then((err) => {
    exitedHow = `cannot run ${cfg.binary}: ${err.message}`;
  }, () => undefined);
  // The ChildProcess stays referenced by its listeners until exit, so this thread reaps it; unref
  // lets the daemon exit while the VM runs on.
  child.unref();

  const pid = child.pid;
  try {
    if (pid === undefined) {
      await new Promise((r) => setImmediate(r));
      throw new JitsuError('BOOT_FAILED', `service ${spec.service}: ${exitedHow ?? `cannot run ${cfg.binary}`} (is qemu-system-x86 installed?)`, { service: spec.service });
    }
    await awaitQmp(paths, () => exitedHow, spec.service, signal);
  } catch (err) {
    if (pid !== undefined) signalGroup(pid, 'SIGKILL');
    await removeTap(cfg.tap).catch(() => undefined);
    throw err;
  }
  const startTime = readProcStat(pid)?.startTime ?? 0;
  const data: QemuData = {
    tap: cfg.tap,
    bridge: cfg.bridge,
    qmp: paths.qmp,
    console: paths.console,
    log: paths.log,
    pidfile: paths.pidfile,
    startTime,
    accel: verdict.accel,
    acpi: cfg.acpi,
    shutdownTimeoutMs: cfg.shutdownTimeoutMs,
    rxBaseline,
    exit: paths.exit,
  };
  return { backend: 'qemu', service: spec.service, link: cfg.tap, mac: cfg.mac, pid, data: qemuHandle.write(data) };
}

async function ready(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void> {
  const { data: d, pid } = qemuHandle.read(handle);
  const check = (): void => {
    capConsole(d.console);
    if (!isAlive(pid, d.startTime)) throw bootFailure(spec.service, d, 'QEMU exited before the guest network came up');
  };
  check();
  try {
    // Even with a TCP probe, wait for the first frame first: connecting before the guest answers
    // ARP leaves a failed neighbour entry on the host that delays the probe by seconds.
    await waitFirstFrame(d.tap, d.rxBaseline, signal, { check });
    if (spec.ready?.kind === 'tcp') await waitTcp(spec.network.ip, spec.ready.port, signal, { check });
  } catch (err) {
    if (err instanceof JitsuError) throw err;
    if (signal.aborted) {
      const lines = fileTail(d.console, 15);
      const what = spec.ready ? `tcp:${spec.ready.port} on ${spec.network.ip}` : `a first frame from ${handle.mac ?? 'the guest'} on ${d.tap}`;
      const timeout = `service ${spec.service}: no ${what}; last console lines: ${lines.slice(-3).join(' | ') || '(none)'}`;
      throw abortError(signal, 'ready', { timeout, aborted: `${timeout}: aborted` }, { service: spec.service, console: lines });
    }
    throw new JitsuError('READY_TIMEOUT', `service ${spec.service}: cannot watch ${d.tap}: ${(err as Error).message}`, { service: spec.service }, { cause: err });
  }
}

async function stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, signal: AbortSignal): Promise<void> {
  const { data: d, pid } = qemuHandle.read(handle);
  const alive = (): boolean => isAlive(pid, d.startTime);
  if (mode === 'suspend') {
    if (!alive()) throw new JitsuError('NOT_RUNNING', `service ${spec.service}: QEMU (pid ${pid}) is not running; cannot suspend`, { service: spec.service, pid });
    try {
      await qmpOnce(d.qmp, 'stop');
    } catch (err) {
      throw new JitsuError('STOP_FAILED', `service ${spec.service}: QMP stop failed: ${(err as Error).message}`, { service: spec.service }, { cause: err });
    }
    return;
  }
  if (alive() && mode === 'shutdown' && d.acpi) {
    // A paused guest cannot see the power button.
    try {
      await qmpOnce(d.qmp, 'cont');
      await qmpOnce(d.qmp, 'system_powerdown');
    } catch {
      // QMP gone: fall through to quit/kill
    }
    await pollUntil(() => !alive(), Math.max(0, d.shutdownTimeoutMs), { firstMs: 20, maxMs: 20 }, signal);
  }
  if (alive()) {
    try {
      await qmpOnce(d.qmp, 'quit', undefined, 1000);
    } catch {
      // the reply may race QEMU's exit; exit is checked below
    }
    if (!(await waitExit(pid, d.startTime, QUIT_GRACE_MS))) {
      try {
        signalGroup(pid, 'SIGKILL');
      } catch (err) {
        throw new JitsuError('STOP_FAILED', `service ${spec.service}: cannot signal QEMU's process group ${pid}: ${(err as Error).message}`, { service: spec.service, pid }, { cause: err });
      }
      if (!(await waitExit(pid, d.startTime, QUIT_GRACE_MS))) {
        throw new JitsuError('STOP_FAILED', `service ${spec.service}: QEMU (pid ${pid}) survived SIGKILL`, { service: spec.service, pid });
      }
    }
  }
  await removeTap(d.tap);
  rmSync(d.qmp, { force: true });
  rmSync(d.pidfile, { force: true });
}

async function resume(handle: BackendHandle, spec: ServiceSpec): Promise<void> {
  const { data: d, pid } = qemuHandle.read(handle);
  if (!isAlive(pid, d.startTime)) {
    throw new JitsuError('NOT_RUNNING', `service ${spec.service}: QEMU (pid ${pid}) is not running; start it instead of resuming`, { service: spec.service });
  }
  try {
    await qmpOnce(d.qmp, 'cont');
  } catch (err) {
    throw new JitsuError('RESUME_FAILED', `service ${spec.service}: QMP cont failed: ${(err as Error).message}`, { service: spec.service }, { cause: err });
  }
}

/** Console lines that say how the guest ended, most telling first. */
const GUEST_PANIC = /Kernel panic|Oops:|BUG:/;
const GUEST_POWEROFF = /reboot: (Power down|Restarting system)|System halted/;

/**
 * How a ready guest ended. QEMU exits on every guest end it is configured for (`-no-reboot` and
 * `panic=-1` turn a panic or reboot into an exit, and there is no `-no-shutdown`), so its exit
 * status plus the console's last words tell a panic, a power-off and a kill apart.
 */
async function exitReport(handle: BackendHandle): Promise<ExitReport> {
  const { data: d, pid } = qemuHandle.read(handle);
  const consoleTail = fileTail(d.console, 15);
  let status: { code: number | null; signal: string | null } | undefined;
  for (let i = 0; i < 40 && d.exit !== undefined && status === undefined; i++) {
    try {
      status = JSON.parse(readFileSync(d.exit, 'utf8')) as { code: number | null; signal: string | null };
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  const qemu = describeExit(status?.code ?? null, status?.signal ?? null);
  const qemuSays = fileTail(d.log, 3).join(' | ');
  if (consoleTail.some((l) => GUEST_PANIC.test(l))) {
    return { reason: 'panicked', cause: `guest kernel panic (QEMU pid ${pid} ${qemu.cause})`, logTail: consoleTail };
  }
  if (consoleTail.some((l) => GUEST_POWEROFF.test(l))) {
    return { reason: 'exited', cause: `the guest powered off (QEMU pid ${pid} ${qemu.cause})`, logTail: consoleTail };
  }
  return { reason: qemu.reason, cause: `QEMU pid ${pid} ${qemu.cause}${qemuSays ? `: ${qemuSays}` : ''}`, logTail: consoleTail };
}

async function state(handle: BackendHandle): Promise<RuntimeState> {
  const { data: d, pid } = qemuHandle.read(handle);
  capConsole(d.console);
  if (!isAlive(pid, d.startTime)) return 'stopped';
  try {
    const st = (await qmpOnce(d.qmp, 'query-status', undefined, 1000)) as { status?: JsonValue; running?: JsonValue } | null;
    if (st?.running === true) return 'running';
    if (st?.status === 'paused' || st?.status === 'suspended' || st?.status === 'prelaunch') return 'paused';
    if (st?.status === 'shutdown' || st?.status === 'guest-panicked') return 'stopped';
    return 'unknown';
  } catch {
    return 'unknown';
  }
}

export const backend: Backend = {
  name: 'qemu',
  summary: 'QEMU -M microvm guests on a tap on the service bridge; KVM when a probe boot proves it works, else TCG',
  capabilities: { stopModes: ['destroy', 'shutdown', 'suspend'], exitWatch: 'pid', netns: false, masking: { prebind: false, hold: true }, defaultMask: 'handshake' },
  options: qemuOptions,
  start,
  ready,
  stop,
  resume,
  state,
  exitReport,
};
