/**
 * The `process` backend: each service is a command run by `jitsu-activate` inside its own network
 * namespace (prepared once by src/network), optionally with its listening sockets pre-bound
 * (socket activation) so no SYN is lost while it starts. Handles are plain JSON; any worker thread
 * can act on a handle another one created, and a pid is only ever signalled after checking its
 * start time (pid-reuse defence).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, constants, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { removeFile } from '../../system/files.js';
import { isAbsolute, join } from 'node:path';
import type { Backend, BackendHandle, ExitReport, RuntimeState, ServiceSpec, StopMode } from '../backend.js';
import { abortError, type BoundedCall } from '../common/abort.js';
import { handleCodec } from '../common/handle.js';
import { describeExit } from '../common/exit-cause.js';
import { findExecutable } from '../common/path-lookup.js';
import { abortableSleep } from '../common/sleep.js';
import { errorMessage, JitsuError } from '../../errors.js';
import { readStandby, removeStandby, takeStandby, writeStandby, type Standby } from '../common/standby.js';
import { hostLinkName, isLinkPassing, linkExists, netnsName, netnsPath, prepareServiceNetns, resetConnections, setLinkPassing } from '../../network/index.js';
import { claimedAll, notPreBoundNote, preloadWorks, programLinkage, servingProbe, watchClaims, type ServingProbe } from '../common/activation.js';
import { planLimits } from './confine.js';
import { resolveIdentity, type Identity } from '../common/identity.js';
import { activatePath, preloadPath } from '../common/launcher.js';
import { LOG_MAX_BYTES, logTail, startLog } from '../common/logs.js';
import { READY_SPINS, pollPacer, pollUntil } from '../common/readiness.js';
import { parseProcessOptions, processOptions, type PrecreateMode, type ProcessConfig } from './options.js';
import { signalGroup } from '../common/process-group.js';
import { decodeWaitStatus, inNetns, liveness, netnsLink, readProcStat } from '../common/proc.js';
import { hasUdpSocket, listeningTcpPorts, tcpListeningAt } from '../../network/sockets.js';
import { maskStrategy } from '../../masking/registry.js';

export { parseProcessOptions, processOptions } from './options.js';
export { parseCommand } from '../common/command-line.js';

/** How long `shutdown` waits after SIGTERM before SIGKILL. */
export const SHUTDOWN_GRACE_MS = 10_000;

interface ProcessData {
  netns: string;
  netnsPath: string;
  startTime: number;
  logPath: string;
  exitPath: string;
  ports: number[];
  mask: string;
  /**
   * Ports bound by the launcher before the command started (socket activation through
   * jitsu-preload.so); ready() waits until the command has claimed each (report at `claimsPath`).
   * Absent in handles of older daemons: nothing to wait for.
   */
  preBound?: number[];
  claimsPath?: string;
}

/** Every call needs the pid, its start time (pid-reuse defence) and the netns (connection resets). */
const processHandle = handleCodec<ProcessData>({ backend: 'process', required: { startTime: 'number', netns: 'string' }, pid: true });
const checkProcessHandle = (h: BackendHandle): unknown => processHandle.read(h);

function fileStem(service: string): string {
  return service.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Written by the launcher's supervisor when the command ends. */
interface ExitRecord {
  pid: number;
  code: number | null;
  signal: number | null;
}

/** How the process ended: from its zombie status, else from its supervisor's exit record (the file is new per boot). */
function exitOf(pid: number, data: ProcessData): { code: number | null; signal: string | number | null } | undefined {
  const l = liveness(pid, data.startTime);
  if (l.state === 'exited' && l.stat) return decodeWaitStatus(l.stat.exitStatus);
  try {
    const rec = JSON.parse(readFileSync(data.exitPath, 'utf8')) as ExitRecord;
    if (rec.pid === pid) return { code: rec.code, signal: rec.signal };
  } catch {
    // no record (yet)
  }
  return undefined;
}

const EXIT_MEANING: Record<number, string> = {
  64: 'launcher usage error',
  65: 'cannot open the netns',
  66: 'setns failed',
  67: 'cannot bind a socket-activation port',
  68: 'cannot chdir to cwd',
  69: 'fd/env setup failed',
  70: 'cannot open the service log',
  71: 'cannot set up the supervisor (exit record, fork)',
  72: 'cannot join its cgroup',
  73: 'cannot set its rlimits',
  74: 'cannot set up its mount namespace (private /tmp, read-only /)',
  75: 'cannot switch to its user/group',
  76: 'cannot drop its capabilities or set no_new_privs',
  77: 'cannot open ports below 1024 in its netns',
  78: 'cannot open its claims report',
  79: 'cannot wait for its start (precreate=on FIFO)',
  126: 'command not executable (by the service user: check the permissions of the program and its directories)',
  127: 'command not found',
};

function bootFailedWith(
  spec: ServiceSpec,
  pid: number,
  tail: string[],
  logPath: string,
  exit: { code: number | null; signal: string | number | null } | undefined,
): JitsuError {
  const how = !exit
    ? 'exited (status unknown)'
    : exit.signal !== null
      ? `was killed by signal ${exit.signal}`
      : `exited with status ${exit.code}${exit.code !== null && EXIT_MEANING[exit.code] ? ` (${EXIT_MEANING[exit.code]})` : ''}`;
  const last = tail.length > 0 ? `; last log lines: ${tail.slice(-3).join(' | ')}` : '';
  return new JitsuError('BOOT_FAILED', `service ${spec.service}: process ${pid} ${how} before it was ready${last}`, {
    service: spec.service,
    pid,
    exitCode: exit?.code ?? null,
    exitSignal: exit?.signal ?? null,
    logTail: tail,
    log: logPath,
  });
}

function bootFailed(spec: ServiceSpec, pid: number, data: ProcessData, exit: { code: number | null; signal: string | number | null } | undefined): JitsuError {
  return bootFailedWith(spec, pid, logTail(data.logPath, 10), data.logPath, exit);
}

function serving(spec: ServiceSpec, pid: number, data: ProcessData, probe: ServingProbe): boolean {
  if (probe.claim.length > 0 && !(data.claimsPath && claimedAll(data.claimsPath, probe.claim))) return false;
  if (probe.listen === 'any') return listeningTcpPorts(pid).size > 0 || hasUdpSocket(pid);
  if (probe.listen.length === 0) return true;
  return tcpListeningAt(pid, spec.network, probe.listen);
}

function probeText(spec: ServiceSpec, probe: ServingProbe): string {
  const parts: string[] = [];
  if (probe.claim.length > 0) parts.push(`has not taken over its pre-bound port ${probe.claim.join(',')} (no listen/accept/poll on it)`);
  if (probe.listen === 'any') parts.push('is not listening on any port');
  else if (probe.listen.length > 0) parts.push(`is not listening on port ${probe.listen.join(',')} of ${spec.network.ip}`);
  return parts.join(' and ');
}

/** Poll until the process is in its netns and serving per `probe`; BOOT_FAILED if it dies first. */
async function waitServing(spec: ServiceSpec, pid: number, data: ProcessData, probe: ServingProbe, signal: AbortSignal, call: BoundedCall): Promise<void> {
  const nsLink = netnsLink(data.netnsPath);
  // A claim wakes the loop at once (inotify), whatever the poll interval has backed off to.
  // `written` keeps a claim that lands between a check and the next pause from being missed.
  let wake: (() => void) | undefined;
  let written = false;
  const onClaim = (): void => {
    written = true;
    wake?.();
  };
  const unwatch = probe.claim.length > 0 && data.claimsPath ? watchClaims(data.claimsPath, onClaim) : () => undefined;
  const pause = (ms: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (written) {
        written = false;
        resolve();
        return;
      }
      wake = resolve;
      abortableSleep(ms, signal).then(resolve, reject);
    });
  try {
    await pollServing(spec, pid, data, probe, nsLink, signal, call, pause);
  } finally {
    unwatch();
  }
}

async function pollServing(
  spec: ServiceSpec,
  pid: number,
  data: ProcessData,
  probe: ServingProbe,
  nsLink: string,
  signal: AbortSignal,
  call: BoundedCall,
  pause: (ms: number) => Promise<void>,
): Promise<void> {
  // Claims and listens come within a few ms for a fast server: poll on the event loop first, then
  // back off to timers for slow boots. Watched claims wake the loop themselves: then the timers
  // only pace the liveness checks.
  const nextCheck = pollPacer({ spins: READY_SPINS, firstMs: 1, maxMs: probe.claim.length > 0 ? 20 : 4 }, signal, pause);
  for (;;) {
    const l = liveness(pid, data.startTime);
    if (l.state === 'exited' || l.state === 'gone') {
      let exit = exitOf(pid, data);
      // Reaped by its supervisor a moment ago: the exit record follows at once. The
      // launcher's logger may also need a moment to write the last words.
      for (let i = 0; i < 10 && (!exit || logTail(data.logPath, 1).length === 0); i++) {
        await new Promise((r) => setTimeout(r, 5));
        exit ??= exitOf(pid, data);
      }
      throw bootFailed(spec, pid, data, exit);
    }
    if (l.state === 'alive' && inNetns(pid, nsLink) && serving(spec, pid, data, probe)) return;
    try {
      await nextCheck();
    } catch {
      const tail = logTail(data.logPath, 10);
      const timeout = `service ${spec.service}: process ${pid} ${probeText(spec, probe)} in time${tail.length ? `; last log lines: ${tail.slice(-3).join(' | ')}` : ''}`;
      throw abortError(signal, call, { timeout }, { service: spec.service, pid, logTail: tail });
    }
  }
}

/** Wait (bounded) until the process is no longer running; true when it ended. */
function waitEnded(pid: number, startTime: number, ms: number, signal?: AbortSignal): Promise<boolean> {
  const ended = (): boolean => {
    const s = liveness(pid, startTime).state;
    return s === 'gone' || s === 'exited';
  };
  return pollUntil(ended, ms, { firstMs: 1, maxMs: 20 }, signal);
}

/**
 * The launcher flags that confine the command (see native/activate.c): its identity, mount
 * namespace and limits. `identity` undefined: user=root, unconfined.
 */
function confinementArgs(spec: ServiceSpec, stem: string, c: ProcessConfig['confinement'], identity: Identity | undefined): string[] {
  const args = planLimits(spec.service, stem, c.limits, identity).args;
  if (identity) {
    // Its netns holds only its own address: a port below 1024 there shadows no system service, so
    // the command may bind one itself (a program the launcher cannot pre-bind for) without a capability.
    args.push('--uid', String(identity.uid), '--gid', String(identity.gid), '--open-low-ports');
  }
  if (c.privateTmp) args.push('--private-tmp');
  if (c.readOnly) args.push('--read-only');
  return args;
}

/** uid 0 (user=root) is the explicit opt-out: unconfined, as the daemon itself runs. */
function identityOf(spec: ServiceSpec, cfg: ProcessConfig): Identity | undefined {
  const resolved = resolveIdentity(spec.service, cfg.confinement.user, cfg.confinement.group);
  return resolved.uid === 0 ? undefined : resolved;
}

/** The FIFO a precreated command waits on (native/activate.c --wait-fifo). */
const startFifo = (spec: ServiceSpec): string => join(spec.runDir, `${fileStem(spec.service)}.start`);

async function start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle> {
  const cfg = parseProcessOptions(spec.service, spec.options);
  const held = takeStandby(spec.runDir, checkProcessHandle);
  if (held) {
    const started = await startStandby(spec, cfg, held, signal);
    if (started) return started;
  }
  const handle = await launch(spec, cfg, identityOf(spec, cfg), signal);
  await linkOnUnlessWaiting(spec, handle);
  return handle;
}

/**
 * The link goes on the bridge at once unless parked (park/handshake: in ready()) or the ports are the
 * program's own (not pre-bound: until it listens, its kernel would reset early SYNs).
 */
async function linkOnUnlessWaiting(spec: ServiceSpec, handle: BackendHandle): Promise<void> {
  const { data, pid } = processHandle.read(handle);
  const parked = maskStrategy(spec.mask).linkUp === 'ready';
  if (parked || (data.preBound ?? []).length < data.ports.length || !handle.link) return;
  try {
    await setLinkPassing(handle.link, true);
  } catch (err) {
    signalGroup(pid, 'SIGKILL');
    throw err;
  }
}

/**
 * What a precreated command was made from: the service spec, the launcher and the identity it runs
 * as. Its program is only exec'd at start, so a program updated on disk meanwhile is the one run.
 */
function standbyKey(spec: ServiceSpec, identity: Identity | undefined): string {
  return createHash('sha256').update(JSON.stringify([spec, activatePath(), identity?.uid ?? 0, identity?.gid ?? 0])).digest('hex').slice(0, 32);
}

/**
 * Still the command we launched (same pid and start time), waiting (precreate=on) or frozen
 * (precreate=warm) as we left it, in the service's current netns, its link there.
 */
function standbyUsable(handle: BackendHandle, mode: PrecreateMode): boolean {
  const { data, pid } = processHandle.read(handle);
  const expected = mode === 'warm' ? 'stopped-signal' : 'alive';
  return liveness(pid, data.startTime).state === expected && !!handle.link && linkExists(handle.link) && inNetns(pid, netnsLink(data.netnsPath));
}

async function discardStandby(spec: ServiceSpec, held: Standby): Promise<void> {
  await stop(held.handle, spec, 'destroy', AbortSignal.timeout(SHUTDOWN_GRACE_MS)).catch(() => undefined);
}

/**
 * Lets the command launched ahead exec: one byte into its start FIFO. Opening the FIFO for writing
 * fails (ENXIO) once nothing reads it, so a command that died meanwhile is found here. Undefined
 * when it cannot be used (then it is ended and the caller launches a new one).
 */
async function startStandby(spec: ServiceSpec, cfg: ProcessConfig, held: Standby, signal: AbortSignal): Promise<BackendHandle | undefined> {
  if (cfg.precreate === 'off' || held.key !== standbyKey(spec, identityOf(spec, cfg)) || !standbyUsable(held.handle, cfg.precreate)) {
    await discardStandby(spec, held);
    return undefined;
  }
  if (signal.aborted) throw abortError(signal, 'start', { timeout: `service ${spec.service}: start aborted` }, { service: spec.service });
  if (cfg.precreate === 'warm') {
    // It already serves (prepare() saw it): thawed, it takes the connections its kernel queues.
    const { pid } = processHandle.read(held.handle);
    try {
      signalGroup(pid, 'SIGCONT');
    } catch (err) {
      appendFileSync(processHandle.read(held.handle).data.logPath, `jitsu: the command kept ready cannot be thawed (${errorMessage(err)}); launching a new one\n`);
      await discardStandby(spec, held);
      return undefined;
    }
    if (maskStrategy(spec.mask).linkUp === 'ready' || !held.handle.link) return held.handle;
    try {
      await setLinkPassing(held.handle.link, true);
    } catch (err) {
      signalGroup(pid, 'SIGKILL');
      throw err;
    }
    return held.handle;
  }
  try {
    const fd = openSync(startFifo(spec), constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      writeSync(fd, 'g');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    appendFileSync(processHandle.read(held.handle).data.logPath, `jitsu: the command launched ahead no longer waits (${errorMessage(err)}); launching a new one\n`);
    await discardStandby(spec, held);
    return undefined;
  }
  await linkOnUnlessWaiting(spec, held.handle);
  return held.handle;
}

/**
 * prepare(): with precreate=on, the next command launched and waiting for its exec; with
 * precreate=warm, the next command serving (off the bridge), then frozen; else nothing.
 */
async function prepare(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | undefined> {
  const cfg = parseProcessOptions(spec.service, spec.options);
  const held = readStandby(spec.runDir, checkProcessHandle);
  const identity = cfg.precreate !== 'off' ? identityOf(spec, cfg) : undefined;
  const key = cfg.precreate !== 'off' ? standbyKey(spec, identity) : undefined;
  if (held && held.key === key && standbyUsable(held.handle, cfg.precreate)) return held.handle;
  // Anything else held is stale (other keys, gone, an old netns) or no longer wanted.
  if (held) {
    removeStandby(spec.runDir);
    await discardStandby(spec, held);
  }
  if (key === undefined) return undefined;
  const handle = cfg.precreate === 'warm' ? await launchFrozen(spec, cfg, identity, signal) : await launch(spec, cfg, identity, signal, startFifo(spec));
  writeStandby(spec.runDir, { key, handle });
  return handle;
}

/**
 * precreate=warm: the command launched with its link off the bridge, left to run until it serves as ready()
 * would see it, then frozen. A command that fails on the way is ended and its error is prepare()'s.
 */
async function launchFrozen(spec: ServiceSpec, cfg: ProcessConfig, identity: Identity | undefined, signal: AbortSignal): Promise<BackendHandle> {
  const link = hostLinkName(spec.service);
  if (linkExists(link) && isLinkPassing(link)) await setLinkPassing(link, false);
  const handle = await launch(spec, cfg, identity, signal);
  const { data, pid } = processHandle.read(handle);
  try {
    await waitReady(spec, pid, data, signal);
    await freeze(pid, data.startTime);
  } catch (err) {
    await stop(handle, spec, 'destroy', AbortSignal.timeout(SHUTDOWN_GRACE_MS)).catch(() => undefined);
    throw err;
  }
  return handle;
}

/** SIGSTOP to the process group, resolved once the kernel reports it stopped (a group stop is asynchronous: every thread must stop). */
async function freeze(pid: number, startTime: number): Promise<void> {
  signalGroup(pid, 'SIGSTOP');
  for (let i = 0; i < 200 && liveness(pid, startTime).state === 'alive'; i++) await new Promise((r) => setTimeout(r, 1));
}

/**
 * Runs the launcher: netns, sockets, log, supervisor, confinement, then the exec — or, with
 * `waitFifo`, a wait for the start byte just before it. Resolves with the command's handle once
 * its pid is known; the link stays as it is.
 */
async function launch(spec: ServiceSpec, cfg: ProcessConfig, identity: Identity | undefined, signal: AbortSignal, waitFifo?: string): Promise<BackendHandle> {
  const launcher = activatePath();
  const netns = netnsName(spec.service);
  const nsPath = netnsPath(netns);
  const link = hostLinkName(spec.service);
  if (!existsSync(nsPath) || !linkExists(link)) await prepareServiceNetns(spec.network, spec.service, { hostLinkPassing: false });
  const parked = maskStrategy(spec.mask).linkUp === 'ready';
  // A booting service must not answer until it can accept (park/handshake: until ready()).
  if (parked && isLinkPassing(link)) await setLinkPassing(link, false);

  const env: NodeJS.ProcessEnv = { ...process.env, JITSU_SERVICE: spec.service, ...cfg.env };
  const argv = cfg.command.argv;
  // Found like execvp would, so "not found" fails the boot at once with a clear message.
  const program = cfg.command.shell ? argv[0] : findExecutable(argv[0]!, env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin', cfg.cwd);
  if (!program) {
    throw new JitsuError('BOOT_FAILED', `service ${spec.service}: command not found: ${argv[0]} (check exec= and PATH)`, {
      service: spec.service,
      command: argv[0],
      exitCode: 127,
    });
  }
  const stem = fileStem(spec.service);
  const logPath = join(spec.runDir, `${stem}.log`);
  const exitPath = join(spec.runDir, `${stem}.exit`);
  const claimsPath = join(spec.runDir, `${stem}.claims`);
  removeFile(exitPath);
  removeFile(claimsPath);
  startLog(logPath);

  // Pre-bound sockets reach a server that binds its own port only through jitsu-preload.so, which
  // a static (or non-glibc) program never loads: such a program binds the port itself instead.
  const linkage = cfg.ports.length > 0 ? programLinkage(isAbsolute(program) ? program : join(cfg.cwd ?? process.cwd(), program)) : 'unknown';
  const preBound = preloadWorks(linkage) ? cfg.ports : [];
  if (preBound.length < cfg.ports.length) appendFileSync(logPath, notPreBoundNote(program, linkage, cfg.ports));
  const args = ['--netns', nsPath, '--log', logPath, '--log-max', String(LOG_MAX_BYTES)];
  const any = spec.network.family === 6 ? '[::]' : '';
  for (const port of preBound) args.push('--listen', `tcp:${any}:${port}`);
  // The report is opened by the launcher (as root): the service user need not reach the run dir.
  if (preBound.length > 0) args.push('--preload', preloadPath(), '--report', claimsPath);
  if (cfg.cwd) args.push('--chdir', cfg.cwd);
  args.push(...confinementArgs(spec, stem, cfg.confinement, identity), '--', ...argv);

  if (signal.aborted) throw abortError(signal, 'start', { timeout: `service ${spec.service}: start aborted` }, { service: spec.service });
  // The launcher binds the sockets in the netns, forks a supervisor that forks the command in its
  // own session (pgid = pid) and reports the command's pid on fd 3, then exits. The supervisor
  // (reparented to init, not ours) records the exit status: no thread of ours ever has to reap the
  // service, so services outlive workers and daemon restarts without zombies.
  args.unshift('--ready-fd', '3', '--supervise', exitPath);
  if (waitFifo) args.unshift('--wait-fifo', waitFifo);
  const child = spawn(launcher, args, { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'], env });
  child.on('error', () => undefined);
  child.unref();
  const pid = await launched(spec, child, logPath, signal);
  // A pid that already exited (and was reaped by its supervisor) reads as -1: ready() reports it.
  const startTime = readProcStat(pid)?.startTime ?? -1;

  const data: ProcessData = { netns, netnsPath: nsPath, startTime, logPath, exitPath, ports: cfg.ports, mask: spec.mask, preBound, claimsPath };
  // The sockets were bound before the pid was reported: from now on the kernel queues every SYN.
  return { backend: 'process', service: spec.service, link, mac: spec.network.mac, pid, data: processHandle.write(data) };
}

/**
 * The service pid the launcher reports on its ready pipe (after binding every socket). If the
 * pipe closes without one, the launcher failed: BOOT_FAILED with its exit status and log.
 */
async function launched(spec: ServiceSpec, child: ChildProcess, logPath: string, signal: AbortSignal): Promise<number> {
  const pipe = child.stdio[3] as Readable | null;
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
  let text = '';
  let onAbort: (() => void) | undefined;
  const outcome = await new Promise<'pid' | 'closed' | 'aborted'>((resolve) => {
    if (!pipe) return resolve('closed');
    pipe.setEncoding('latin1');
    pipe.on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) resolve('pid');
    });
    pipe.once('close', () => resolve(text.includes('\n') ? 'pid' : 'closed'));
    pipe.once('error', () => resolve('closed'));
    onAbort = () => resolve('aborted');
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  if (onAbort) signal.removeEventListener('abort', onAbort);
  pipe?.destroy();
  const pid = Number.parseInt(text, 10);
  if (outcome === 'pid' && pid > 0) return pid;
  if (outcome === 'aborted') {
    if (child.pid) signalGroup(child.pid, 'SIGKILL');
    throw abortError(signal, 'start', { timeout: `service ${spec.service}: the launcher did not start the command in time` }, { service: spec.service });
  }
  const exit = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(r, 1000))]);
  // The logger writes the launcher's one-line reason a moment after it exits.
  let tail = logTail(logPath, 10);
  for (let i = 0; i < 10 && tail.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 5));
    tail = logTail(logPath, 10);
  }
  return Promise.reject(bootFailedWith(spec, child.pid ?? 0, tail, logPath, exit));
}

/** Until the command serves as ready() means it: its ready= port, else every port= it has. */
function waitReady(spec: ServiceSpec, pid: number, data: ProcessData, signal: AbortSignal): Promise<void> {
  const wanted = spec.ready ? [spec.ready.port] : data.ports;
  return waitServing(spec, pid, data, servingProbe(wanted, data.preBound ?? []), signal, 'ready');
}

async function ready(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void> {
  const { data, pid } = processHandle.read(handle);
  await waitReady(spec, pid, data, signal);
  // Last step: from here the service's own kernel answers ARP and SYNs (Synjitsu hands over now).
  if (handle.link) await setLinkPassing(handle.link, true);
}

async function quiesceLink(handle: BackendHandle): Promise<void> {
  if (handle.link && linkExists(handle.link) && isLinkPassing(handle.link)) await setLinkPassing(handle.link, false);
}

/**
 * Clients of a service that ends get a RST at once, never a black hole: its connections are reset
 * while the link is still up, and only then does the link go down.
 */
async function disconnect(handle: BackendHandle, data: ProcessData): Promise<void> {
  await resetConnections(data.netns);
  await quiesceLink(handle);
}

async function stop(handle: BackendHandle, _spec: ServiceSpec, mode: StopMode, signal: AbortSignal): Promise<void> {
  const { data, pid } = processHandle.read(handle);
  const l = liveness(pid, data.startTime);
  if (l.state === 'gone' || l.state === 'exited') {
    await disconnect(handle, data);
    return;
  }
  // A suspended service keeps its connections (frozen); it is off the bridge until resumed.
  if (mode === 'suspend') await quiesceLink(handle);
  else if (mode === 'destroy') await resetConnections(data.netns);
  try {
    switch (mode) {
      case 'suspend':
        await freeze(pid, data.startTime);
        return;
      case 'shutdown': {
        signalGroup(pid, 'SIGTERM');
        if (l.state === 'stopped-signal') signalGroup(pid, 'SIGCONT'); // a suspended process must run to handle TERM
        if (await waitEnded(pid, data.startTime, SHUTDOWN_GRACE_MS, signal)) break;
        await resetConnections(data.netns);
        signalGroup(pid, 'SIGKILL');
        break;
      }
      case 'destroy':
        signalGroup(pid, 'SIGKILL');
        break;
    }
  } catch (err) {
    throw new JitsuError('STOP_FAILED', `service ${handle.service}: cannot signal process group ${pid}: ${(err as Error).message}`, { service: handle.service, pid }, { cause: err });
  }
  if (!(await waitEnded(pid, data.startTime, 2_000))) {
    throw new JitsuError('STOP_FAILED', `service ${handle.service}: process ${pid} survived SIGKILL for 2 s`, { service: handle.service, pid });
  }
  await disconnect(handle, data);
}

async function resume(handle: BackendHandle, spec: ServiceSpec, _signal: AbortSignal): Promise<void> {
  const { data, pid } = processHandle.read(handle);
  const l = liveness(pid, data.startTime);
  if (l.state === 'gone' || l.state === 'exited') {
    throw new JitsuError('NOT_RUNNING', `service ${handle.service}: process ${pid} is gone; start it again`, { service: handle.service, pid });
  }
  if (l.state === 'stopped-signal') {
    signalGroup(pid, 'SIGCONT');
    for (let i = 0; i < 200 && liveness(pid, data.startTime).state === 'stopped-signal'; i++) await new Promise((r) => setTimeout(r, 1));
  }
  // As after a boot: park/handshake services come back on the bridge in ready(), once Synjitsu can hand over.
  const parked = maskStrategy(spec.mask).linkUp === 'ready';
  if (!parked && handle.link) await setLinkPassing(handle.link, true);
}

/** How a ready service's command ended: its supervisor's exit record (written right after it reaps it) and its log. */
async function exitReport(handle: BackendHandle): Promise<ExitReport> {
  const { data, pid } = processHandle.read(handle);
  let exit = exitOf(pid, data);
  for (let i = 0; i < 40 && !exit; i++) {
    await new Promise((r) => setTimeout(r, 5));
    exit = exitOf(pid, data);
  }
  const { reason, cause } = describeExit(exit?.code ?? null, exit?.signal ?? null);
  return { reason, cause: `process ${pid} ${cause}`, logTail: logTail(data.logPath, 10) };
}

async function state(handle: BackendHandle): Promise<RuntimeState> {
  const { data, pid } = processHandle.read(handle);
  switch (liveness(pid, data.startTime).state) {
    case 'alive':
      return 'running';
    case 'stopped-signal':
      return 'paused';
    default:
      return 'stopped';
  }
}

export const backend: Backend = {
  name: 'process',
  summary: 'runs exec= in its own network namespace (veth on the bridge, owns ip), with socket activation for port=',
  capabilities: { stopModes: ['destroy', 'suspend', 'shutdown'], exitWatch: 'pid', netns: true, masking: { prebind: true, hold: true }, defaultMask: 'activate' },
  options: processOptions,
  start,
  prepare,
  ready,
  stop,
  resume,
  state: (handle) => state(handle),
  exitReport: (handle) => exitReport(handle),
};
