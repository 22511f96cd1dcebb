/**
 * The `qemu` backend: each service is a `-M microvm` guest on a tap attached to the service bridge.
 * QEMU runs detached in its own process group and is driven over QMP, so any worker thread (or a
 * restarted daemon) can act on a handle another one created: the handle holds only paths and ids.
 */
import { readStandby, removeStandby, takeStandby, writeStandby, type Standby } from '../common/standby.js';
import { spawn, type StdioOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, accessSync, chmodSync, chownSync, closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Backend, BackendHandle, ExitReport, JsonValue, RuntimeState, ServiceSpec, SnapshotStore, StopMode } from '../backend.js';
import { abortError } from '../common/abort.js';
import { handleCodec } from '../common/handle.js';
import { describeExit } from '../common/exit-cause.js';
import { errorMessage, JitsuError } from '../../errors.js';
import { agentPipeBase, agentRequest, AGENT_PORT_NAME, createAgentPipes, reseedGuest } from './agent.js';
import { buildPaths, checkTemplate, HIBERNATED_DIR, qemuVersion, removeTemplates, sealTemplate, templateKey, type TemplatePaths } from './snapshot.js';
import { storeHasRoom } from '../common/snapshot-store.js';
import { resolveAccel } from './accel.js';
import { buildCmdline, buildQemuArgs, hostCpuKhz, runPaths, type Accel, type QemuPrivileges, type RunPaths, type SnapshotArgs } from './argv.js';
import { capConsole, fileTail } from './console.js';
import { guestImageDir, parseQemuOptions, qemuOptions, type PrespawnMode, type QemuConfig } from './options.js';
import { isAlive, readProcStat } from '../common/proc.js';
import { signalGroup } from '../common/process-group.js';
import { QmpClient, qmpOnce, withTimeout } from './qmp.js';
import { pollUntil, rxPackets, waitFirstFrame, waitTcp } from '../common/readiness.js';
import { createTap, removeTap } from './tap.js';
import { setLinkUp } from '../../network/link.js';
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
  /** The service's run dir (agent pipes, save socket). */
  runDir?: string;
  /** snapshot=template: the RAM file it maps, and the guest agent it has. */
  memPath?: string;
  agent?: boolean;
  /** Loaded from a migration stream (a copy of a template, a hibernated guest resumed): it runs, and sends no first frame. */
  restored?: boolean;
  /** prespawn=warm: restored, reseeded and warmed ahead, then paused: a start only lets it run on. */
  warmed?: boolean;
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

/** What every launch of a service's QEMU shares: its config, files, accelerator and identity. */
interface LaunchPlan {
  cfg: QemuConfig;
  paths: RunPaths;
  accel: Accel;
  cmdline: string;
  privileges: QemuPrivileges;
  startsAs: { uid: number; gid: number } | undefined;
}

async function plan(spec: ServiceSpec): Promise<LaunchPlan> {
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
  const startsAs = privileges.mode === 'unprivileged' ? { uid: identity.uid, gid: identity.gid } : undefined;
  return { cfg, paths, accel: verdict.accel, cmdline, privileges, startsAs };
}

async function start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle> {
  const p = await plan(spec);
  // The record is consumed whatever happens next: a pre-spawned QEMU is started now or ended.
  const held = takeStandby(spec.runDir, checkQemuHandle);
  if (p.cfg.snapshot === 'template' && spec.snapshots !== undefined) return startFromTemplate(spec, p, spec.snapshots, signal, held);
  if (held) await discardStandby(held, spec);
  return launch(spec, p, signal);
}

// prespawn=on: the next copy's QEMU, started and waiting in `-incoming defer` for the state of the
// template `key` (given to it as fd 3 already), its tap down so that nothing queues for a guest
// that does not run yet (a Standby record, common/standby.ts).
const checkQemuHandle = (h: BackendHandle): unknown => qemuHandle.read(h);

function standbyAlive(held: Standby): boolean {
  const { data, pid } = qemuHandle.read(held.handle);
  return isAlive(pid, data.startTime);
}

async function discardStandby(held: Standby, spec: ServiceSpec): Promise<void> {
  await end(held.handle, spec, 'destroy', AbortSignal.timeout(QUIT_GRACE_MS * 3)).catch(() => undefined);
}

/** A standby is made for one template and one prespawn mode: a record for another is never started. */
function standbyKey(templateKey: string, mode: PrespawnMode): string {
  return mode === 'warm' ? `${templateKey}+warm` : templateKey;
}

/**
 * prespawn=warm: restores the waiting QEMU's copy now (tap down: no one reaches it), reseeds it and
 * has its agent make one request to the guest's own server. Under TCG every code path a new QEMU
 * runs is translated on first use: the reseed and the first request are most of a restored copy's
 * time to its first byte (50-80 ms and 60 ms here), and this pays them before the summon. Then the
 * copy is paused (an idle guest under TCG costs ~6% of a core; a paused one nothing, and keeps its
 * translations); its tap stays down, so no one reaches it until a start. ready() reseeds it again
 * and sets its clock, which stood still while it was paused: now on warm paths, in a few ms.
 */
async function warmCopy(spec: ServiceSpec, handle: BackendHandle, signal: AbortSignal): Promise<BackendHandle> {
  await runIncoming(spec, handle, true, signal);
  const { data: d } = qemuHandle.read(handle);
  try {
    if (d.agent !== true || d.runDir === undefined) throw new JitsuError('AGENT_FAILED', `service ${spec.service}: a copy without the agent cannot be reseeded ahead`, { service: spec.service });
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(AGENT_UP_TIMEOUT_MS)]);
    await reseedGuest(d.runDir, bounded, spec.service);
    const port = spec.ready?.kind === 'tcp' ? spec.ready.port : 80;
    // Best effort: a guest with nothing on that port is still a reseeded copy. The second request
    // finds paths the first one's own start-up left cold (measured: first byte 28-34 ms instead of 35-49).
    for (let i = 0; i < 2; i++) await agentRequest(d.runDir, `warm ${port}`, bounded, spec.service).catch(() => undefined);
    await qmpOnce(d.qmp, 'stop');
  } catch (err) {
    await stop(handle, spec, 'destroy', AbortSignal.timeout(5000)).catch(() => undefined);
    throw err;
  }
  return { ...handle, data: qemuHandle.write({ ...d, warmed: true }) };
}

/**
 * Backend.prepare: with prespawn=on and a valid template, a QEMU waiting for it (kept when the one
 * there still waits for this template); otherwise nothing, and whatever was held is ended.
 */
async function prepare(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | undefined> {
  const held = readStandby(spec.runDir, checkQemuHandle);
  const drop = async (): Promise<undefined> => {
    if (held) {
      removeStandby(spec.runDir);
      await discardStandby(held, spec);
    }
    return undefined;
  };
  const store = spec.snapshots;
  const mode = parseQemuOptions(spec, hash8).prespawn;
  if (mode === 'off' || store === undefined) return drop();
  const p = await plan(spec);
  const key = snapshotKey(p);
  const found = checkTemplate(store, spec.service, key, p.cfg.memoryMiB * 1024 * 1024);
  if (found.ok && held?.key === standbyKey(key, mode) && standbyAlive(held)) return held.handle;
  await drop();
  // No template yet: the next start boots cold and makes one; the stop after it pre-spawns.
  if (!found.ok) return undefined;
  let handle = await launchIncoming(spec, p, found.paths.state, signal, copyArgs(spec, found.paths));
  try {
    await setLinkUp(p.cfg.tap, false);
    if (mode === 'warm') handle = await warmCopy(spec, handle, signal);
    writeStandby(spec.runDir, { key: standbyKey(key, mode), handle });
  } catch (err) {
    await discardStandby({ key, handle }, spec);
    throw err;
  }
  return handle;
}

/**
 * Starts QEMU and waits for its QMP greeting. `snapshot`: RAM in a file and the agent port (a
 * template being made, or a copy); `stateFd`: handed to QEMU as fd 3 (the migration stream a copy
 * reads, or the one a template maker writes).
 */
async function launch(spec: ServiceSpec, p: LaunchPlan, signal: AbortSignal, snapshot?: SnapshotArgs, stateFd?: number): Promise<BackendHandle> {
  const { cfg, paths, startsAs } = p;
  const args = buildQemuArgs(cfg, p.cmdline, p.accel, paths, p.privileges, snapshot);
  // A hibernated plain guest comes back from its stream too.
  const incoming = snapshot?.incoming ?? stateFd !== undefined;
  if (incoming && !snapshot) args.push('-incoming', 'defer');

  for (const f of [paths.qmp, paths.pidfile, paths.exit]) rmSync(f, { force: true });
  writeFileSync(paths.console, '');
  if (startsAs) {
    // It creates its QMP socket and pidfile here and appends to the console: its own run dir.
    chownSync(spec.runDir, startsAs.uid, startsAs.gid);
    chownSync(paths.console, startsAs.uid, startsAs.gid);
  }
  if (snapshot) createAgentPipes(spec.runDir, startsAs);
  await createTap(cfg.tap, cfg.bridge, startsAs);
  const rxBaseline = rxPackets(cfg.tap) ?? 0;

  const logFd = openSync(paths.log, 'w');
  let exitedHow: string | undefined;
  let child;
  try {
    const stdio: StdioOptions = stateFd === undefined ? ['ignore', logFd, logFd] : ['ignore', logFd, logFd, stateFd];
    child = spawn(cfg.binary, args, { detached: true, stdio, ...(startsAs ?? {}) });
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
    accel: p.accel,
    acpi: cfg.acpi,
    shutdownTimeoutMs: cfg.shutdownTimeoutMs,
    rxBaseline,
    exit: paths.exit,
    runDir: spec.runDir,
    ...(snapshot ? { memPath: snapshot.memPath, agent: true } : {}),
    ...(incoming ? { restored: true } : {}),
  };
  return { backend: 'qemu', service: spec.service, link: cfg.tap, mac: cfg.mac, pid, data: qemuHandle.write(data) };
}

/** How long a template maker's agent may take to answer once the guest's network is up. */
const AGENT_UP_TIMEOUT_MS = 15_000;
/** How long a restore may take to reach "running" (RAM is mapped, not copied: normally ms). */
const RESTORE_TIMEOUT_MS = 10_000;
/** How long saving the device state may take (tens of KB). */
const SAVE_TIMEOUT_MS = 20_000;

/**
 * `snapshot=template`: restore a copy of the service's template; without a valid one, boot cold as
 * the template's maker, save it once ready, and restore the first copy from it (so a bad template
 * is found at once). Every way this fails ends in a working service: a restore that fails is a cold
 * boot and a fresh template; a template that cannot be taken leaves the cold guest serving. Each
 * such turn is in the handle's notes, for the log.
 */
async function startFromTemplate(spec: ServiceSpec, p: LaunchPlan, store: SnapshotStore, signal: AbortSignal, held: Standby | undefined): Promise<BackendHandle> {
  const { cfg } = p;
  const memBytes = cfg.memoryMiB * 1024 * 1024;
  const key = snapshotKey(p);
  const notes: string[] = [];
  const found = checkTemplate(store, spec.service, key, memBytes);
  const standby = found.ok && held?.key === standbyKey(key, cfg.prespawn) && standbyAlive(held) ? held : undefined;
  if (held && !standby) await discardStandby(held, spec);
  if (found.ok && standby) {
    try {
      // A warm copy is loaded and paused: it runs on; a pre-spawned QEMU loads the template now.
      const waiting = qemuHandle.read(standby.handle).data;
      if (waiting.warmed === true) {
        await Promise.all([setLinkUp(cfg.tap, true), qmpOnce(waiting.qmp, 'cont')]);
        return withNotes(standby.handle, [`restored from template ${found.paths.dir} ahead and warmed while stopped`]);
      }
      await setLinkUp(cfg.tap, true);
      return withNotes(await runIncoming(spec, standby.handle, true, signal), [`restored from template ${found.paths.dir} in a pre-spawned QEMU`]);
    } catch (err) {
      await discardStandby(standby, spec);
      if (signal.aborted) throw err;
      notes.push(`the pre-spawned QEMU did not restore (${errorMessage(err)}); restoring in a new one`);
    }
  }
  if (found.ok) {
    try {
      return withNotes(await restoreCopy(spec, p, found.paths, signal), [`restored from template ${found.paths.dir}`]);
    } catch (err) {
      if (signal.aborted) throw err;
      notes.push(`restore from template ${found.paths.dir} failed, booting cold for a fresh template: ${errorMessage(err)}`);
    }
  } else if (found.present) {
    notes.push(`${found.reason}; booting cold for a fresh template`);
  }
  removeTemplates(store, spec.service);
  const room = storeHasRoom(store, memBytes);
  if (!room.ok) return withNotes(await launch(spec, p, signal), [...notes, `no template taken: ${room.reason}`]);

  const build = buildPaths(store, spec.service);
  mkdirSync(build.dir, { recursive: true, mode: 0o700 });
  // The snapshot dir is ours, like the state dir: QEMU, as the service user, must reach its files.
  for (const dir of [store.dir, dirname(build.dir)]) chmodSync(dir, (statSync(dir).mode & 0o7777) | 0o111);
  if (p.startsAs) chownSync(build.dir, p.startsAs.uid, p.startsAs.gid);
  let maker: BackendHandle;
  try {
    maker = await launch(spec, p, signal, { memPath: build.mem, share: true, agentPipe: agentPipeBase(spec.runDir), incoming: false });
  } catch (err) {
    rmSync(build.dir, { recursive: true, force: true });
    throw err;
  }
  try {
    await ready(maker, spec, signal);
    await saveTemplate(spec, maker, build.state, signal);
  } catch (err) {
    if (signal.aborted || !isAlive(maker.pid!, qemuHandle.read(maker).data.startTime)) {
      rmSync(build.dir, { recursive: true, force: true });
      throw err;
    }
    // The guest is up: it serves, without a template (its RAM file goes once QEMU ends).
    await qmpOnce(qemuHandle.read(maker).data.qmp, 'cont').catch(() => undefined);
    rmSync(build.dir, { recursive: true, force: true });
    return withNotes(maker, [...notes, `no template taken: ${errorMessage(err)}`]);
  }
  const sealed = sealTemplate(store, spec.service, key, build, qemuVersion(cfg.binary), memBytes);
  await stop(maker, spec, 'destroy', signal);
  notes.push(`template saved: ${sealed.dir}`);
  try {
    return withNotes(await restoreCopy(spec, p, sealed, signal), notes);
  } catch (err) {
    // A template that cannot be restored right after it was made is no template: boot cold.
    if (signal.aborted) throw err;
    removeTemplates(store, spec.service);
    return withNotes(await launch(spec, p, signal), [...notes, `the new template does not restore, removed; booted cold: ${errorMessage(err)}`]);
  }
}

/** The key of this service's template: its argv without run-specific values, QEMU's version, kernel and initrd. */
function snapshotKey(p: LaunchPlan): string {
  const { cfg, paths } = p;
  const argv = buildQemuArgs(cfg, p.cmdline, p.accel, paths, p.privileges, { memPath: '<mem>', share: false, agentPipe: '<agent>', incoming: false });
  const files = cfg.initrd === undefined ? [cfg.kernel] : [cfg.kernel, cfg.initrd];
  return templateKey(qemuVersion(cfg.binary), argv, [paths.qmp, paths.console, paths.pidfile, paths.log, cfg.tap], files);
}

function withNotes(handle: BackendHandle, notes: string[]): BackendHandle {
  return notes.length === 0 ? handle : { ...handle, notes };
}

/**
 * Pause the maker and save its device state (RAM stays in the shared file: x-ignore-shared) into
 * `statePath`. Only a guest whose agent answers is saved: without one its copies could not be
 * reseeded.
 */
async function saveTemplate(spec: ServiceSpec, maker: BackendHandle, statePath: string, signal: AbortSignal): Promise<void> {
  await agentUp(spec, signal);
  await migrateOut(spec, qemuHandle.read(maker).data, statePath, true, signal);
}

/**
 * Pause the guest and write its migration stream to `statePath` (`ignoreShared`: without RAM in a
 * shared file). QEMU 7.2 migrates only to a named fd, a command (which its sandbox forbids) or a
 * socket: it connects to one of ours in the run dir, and we write what it sends.
 */
async function migrateOut(spec: ServiceSpec, d: QemuData, statePath: string, ignoreShared: boolean, signal: AbortSignal): Promise<void> {
  const sock = join(spec.runDir, 'save.sock');
  rmSync(sock, { force: true });
  let received: Promise<void> = Promise.reject(new Error('QEMU never connected to the save socket'));
  received.catch(() => undefined);
  const server = createServer((conn) => {
    const file = createWriteStream(statePath, { mode: 0o600 });
    received = new Promise((resolve, reject) => {
      conn.on('error', reject);
      file.on('error', reject);
      file.on('finish', resolve);
    });
    conn.pipe(file);
  });
  await new Promise<void>((resolve, reject) => server.listen(sock, resolve).once('error', reject));
  try {
    // QEMU runs as the run dir's owner.
    const owner = statSync(spec.runDir);
    chownSync(sock, owner.uid, owner.gid);
    const qmp = await QmpClient.connect(d.qmp, 2000);
    try {
      await qmp.execute('stop');
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: ignoreShared }] });
      await qmp.execute('migrate', { uri: `unix:${sock}` });
      const deadline = Date.now() + SAVE_TIMEOUT_MS;
      for (;;) {
        const st = (await qmp.execute('query-migrate')) as { status?: JsonValue; 'error-desc'?: JsonValue } | null;
        if (st?.status === 'completed') break;
        if (st?.status === 'failed' || st?.status === 'cancelled') {
          throw new JitsuError('SNAPSHOT_FAILED', `service ${spec.service}: saving the guest failed: ${String(st['error-desc'] ?? st.status)}`, { service: spec.service, qmp: d.qmp });
        }
        if (Date.now() > deadline || signal.aborted) throw new JitsuError('SNAPSHOT_FAILED', `service ${spec.service}: saving the guest did not complete in ${SAVE_TIMEOUT_MS} ms`, { service: spec.service, qmp: d.qmp });
        await new Promise((r) => setTimeout(r, 2));
      }
    } finally {
      qmp.close();
    }
    await withTimeout(received, SAVE_TIMEOUT_MS, 'writing the saved state');
  } finally {
    server.close();
    rmSync(sock, { force: true });
  }
}

/** The agent starts after the guest's network: ask until it answers (bounded). */
async function agentUp(spec: ServiceSpec, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + AGENT_UP_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline && !signal.aborted) {
    try {
      await agentRequest(spec.runDir, 'ping', AbortSignal.any([signal, AbortSignal.timeout(500)]), spec.service);
      return;
    } catch (err) {
      last = err;
    }
  }
  throw new JitsuError('AGENT_FAILED', `service ${spec.service}: the guest has no jitsu agent answering on ${AGENT_PORT_NAME} (${errorMessage(last)}); a snapshot needs it for clone safety (see the qemu README)`, { service: spec.service });
}

/** The RAM file and agent of a copy of `tpl`: mapped copy-on-write, never written back. */
function copyArgs(spec: ServiceSpec, tpl: TemplatePaths): SnapshotArgs {
  return { memPath: tpl.mem, share: false, agentPipe: agentPipeBase(spec.runDir), incoming: true };
}

/**
 * A fresh copy of a template: the same machine with RAM mapped copy-on-write from the template's
 * file, its device state read from the template. ready() then reseeds it.
 */
function restoreCopy(spec: ServiceSpec, p: LaunchPlan, tpl: TemplatePaths, signal: AbortSignal): Promise<BackendHandle> {
  return restore(spec, p, tpl.state, true, signal, copyArgs(spec, tpl));
}

/** Starts QEMU waiting for a migration stream, `statePath` given to it as fd 3. */
async function launchIncoming(spec: ServiceSpec, p: LaunchPlan, statePath: string, signal: AbortSignal, snapshot?: SnapshotArgs): Promise<BackendHandle> {
  const stateFd = openSync(statePath, 'r');
  try {
    return await launch(spec, p, signal, snapshot, stateFd);
  } finally {
    closeSync(stateFd);
  }
}

/** Starts QEMU waiting for `statePath` and loads it: see runIncoming. */
async function restore(spec: ServiceSpec, p: LaunchPlan, statePath: string, ignoreShared: boolean, signal: AbortSignal, snapshot?: SnapshotArgs): Promise<BackendHandle> {
  return runIncoming(spec, await launchIncoming(spec, p, statePath, signal, snapshot), ignoreShared, signal);
}

/**
 * Has a QEMU started by launchIncoming load its fd 3. `cont` is sent with the incoming migration,
 * so the guest runs the moment its state is loaded; this returns once QEMU says it runs (a state it
 * cannot load ends QEMU: SNAPSHOT_FAILED, and the caller boots cold).
 */
async function runIncoming(spec: ServiceSpec, copy: BackendHandle, ignoreShared: boolean, signal: AbortSignal): Promise<BackendHandle> {
  const { data: d, pid } = qemuHandle.read(copy);
  try {
    const qmp = await QmpClient.connect(d.qmp, 2000);
    try {
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: ignoreShared }] });
      await qmp.execute('migrate-incoming', { uri: 'fd:3' });
      // During an incoming migration `cont` means "run once loaded".
      await qmp.execute('cont');
      const deadline = Date.now() + RESTORE_TIMEOUT_MS;
      for (;;) {
        const st = (await qmp.execute('query-status')) as { running?: JsonValue; status?: JsonValue } | null;
        if (st?.running === true) break;
        // Loaded before our `cont` arrived (then it was a no-op): paused now, so run it.
        if (st?.status === 'paused') await qmp.execute('cont');
        if (Date.now() > deadline || signal.aborted) throw new JitsuError('SNAPSHOT_FAILED', `service ${spec.service}: the restored copy is ${String(st?.status)} after ${RESTORE_TIMEOUT_MS} ms`, { service: spec.service, qmp: d.qmp });
        await new Promise((r) => setTimeout(r, 1));
      }
    } finally {
      qmp.close();
    }
  } catch (err) {
    const qemuLog = fileTail(d.log, 5);
    await stop(copy, spec, 'destroy', AbortSignal.timeout(5000)).catch(() => undefined);
    if (err instanceof JitsuError && err.code === 'SNAPSHOT_FAILED') throw err;
    throw new JitsuError('SNAPSHOT_FAILED', `service ${spec.service}: restore failed (QEMU pid ${pid}): ${qemuLog.join(' | ') || errorMessage(err)}`, { service: spec.service, qemuLog }, { cause: err });
  }
  return copy;
}

async function ready(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void> {
  const { data: d, pid } = qemuHandle.read(handle);
  const check = (): void => {
    capConsole(d.console);
    if (!isAlive(pid, d.startTime)) throw bootFailure(spec.service, d, 'QEMU exited before the guest network came up');
  };
  check();
  try {
    if (d.restored === true) {
      // A restored guest runs already (its network is as it was saved); a copy may answer no one
      // before its RNG is reseeded and its clock set: that is its readiness.
      if (d.agent === true && d.runDir !== undefined) await reseedGuest(d.runDir, signal, spec.service);
      if (spec.ready?.kind === 'tcp') await waitTcp(spec.network.ip, spec.ready.port, signal, { check });
      return;
    }
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

function stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, signal: AbortSignal): Promise<void> {
  if (mode === 'hibernate') return hibernate(handle, spec, signal);
  const held = readStandby(spec.runDir, checkQemuHandle);
  if (held !== undefined && handleId(held.handle) === handleId(handle)) removeStandby(spec.runDir);
  // Any other stop of a hibernated guest ends it for good.
  if (spec.snapshots !== undefined && hibernatedAs(spec.snapshots, spec.service) === handleId(handle)) rmSync(hibernationPath(spec.snapshots, spec.service), { recursive: true, force: true });
  return end(handle, spec, mode, signal);
}

/** Suspend, power off or destroy: QEMU and its tap; images in the snapshot dir are left alone. */
async function end(handle: BackendHandle, spec: ServiceSpec, mode: Exclude<StopMode, 'hibernate'>, signal: AbortSignal): Promise<void> {
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

async function resume(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | void> {
  const { data: d, pid } = qemuHandle.read(handle);
  if (!isAlive(pid, d.startTime)) {
    if (spec.snapshots !== undefined && hibernatedAs(spec.snapshots, spec.service) === handleId(handle)) return wake(handle, spec, spec.snapshots, signal);
    // Hibernated without room for the image (or gone since): what comes back is a cold boot.
    return withNotes(await start(spec, signal), [`QEMU pid ${pid} is gone and left no hibernation image: booted cold`]);
  }
  try {
    await qmpOnce(d.qmp, 'cont');
  } catch (err) {
    throw new JitsuError('RESUME_FAILED', `service ${spec.service}: QMP cont failed: ${(err as Error).message}`, { service: spec.service }, { cause: err });
  }
}

/** A hibernated guest's image: `<snapshot-dir>/<service>/hibernated/` with `state` and `of` (the handle it was). */
function hibernationPath(store: SnapshotStore, service: string): string {
  return join(store.dir, service, HIBERNATED_DIR);
}

function handleId(handle: BackendHandle): string {
  return `${handle.pid}:${String(handle.data['startTime'])}`;
}

/** Which handle the service's hibernation image is of, if there is a complete one. */
function hibernatedAs(store: SnapshotStore, service: string): string | undefined {
  try {
    return readFileSync(join(hibernationPath(store, service), 'of'), 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Stop mode hibernate: the guest is paused and saved with all its RAM (the whole migration stream)
 * to the snapshot dir, then QEMU ends: its memory and CPU are free. The `of` file, written last,
 * makes the image complete and names the handle it belongs to. No room in the snapshot dir: the
 * guest is destroyed instead, and the next summon boots it cold (resume finds no image).
 */
async function hibernate(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void> {
  const { data: d, pid } = qemuHandle.read(handle);
  if (!isAlive(pid, d.startTime)) throw new JitsuError('NOT_RUNNING', `service ${spec.service}: QEMU (pid ${pid}) is not running; cannot hibernate`, { service: spec.service, pid });
  const store = spec.snapshots;
  const dir = store === undefined ? undefined : hibernationPath(store, spec.service);
  const room = store === undefined ? undefined : storeHasRoom(store, parseQemuOptions(spec, hash8).memoryMiB * 1024 * 1024);
  if (store === undefined || dir === undefined || room?.ok !== true) {
    await end(handle, spec, 'destroy', signal);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    await migrateOut(spec, d, join(dir, 'state'), false, signal);
    writeFileSync(join(dir, 'of'), handleId(handle));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    await qmpOnce(d.qmp, 'cont').catch(() => undefined);
    throw new JitsuError('STOP_FAILED', `service ${spec.service}: hibernate failed (the guest runs on): ${errorMessage(err)}`, { service: spec.service, pid }, { cause: err });
  }
  await end(handle, spec, 'destroy', signal);
}

/** Resume a hibernated guest: the same machine, its whole state from the image; the image goes once it runs. */
async function wake(handle: BackendHandle, spec: ServiceSpec, store: SnapshotStore, signal: AbortSignal): Promise<BackendHandle> {
  const { data: d } = qemuHandle.read(handle);
  const dir = hibernationPath(store, spec.service);
  const p = await plan(spec);
  const snapshot: SnapshotArgs | undefined = d.memPath === undefined ? undefined : { memPath: d.memPath, share: false, agentPipe: agentPipeBase(spec.runDir), incoming: true };
  try {
    const woken = await restore(spec, p, join(dir, 'state'), false, signal, snapshot);
    return withNotes(woken, ['resumed from hibernation']);
  } catch (err) {
    if (signal.aborted) throw err;
    return withNotes(await start(spec, signal), [`resume from hibernation failed, booted cold: ${errorMessage(err)}`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
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

async function state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState> {
  const { data: d, pid } = qemuHandle.read(handle);
  capConsole(d.console);
  if (!isAlive(pid, d.startTime)) {
    // Hibernated: no process, the guest is in its image (this handle's, not an older one's).
    const image = spec.snapshots === undefined ? undefined : hibernatedAs(spec.snapshots, spec.service);
    return image !== undefined && image === handleId(handle) ? 'paused' : 'stopped';
  }
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
  capabilities: { stopModes: ['destroy', 'shutdown', 'suspend', 'hibernate'], exitWatch: 'pid', netns: false, masking: { prebind: false, hold: true }, defaultMask: 'handshake' },
  options: qemuOptions,
  start,
  ready,
  stop,
  resume,
  state,
  exitReport,
  prepare,
};
