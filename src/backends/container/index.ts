/**
 * OCI containers run with crun inside the service's prepared network namespace. With socket
 * activation the listening sockets are bound in that netns before crun starts and preserved into the
 * container as fds 3.. (LISTEN_FDS), so a connection that arrives during the start waits in the
 * kernel's accept queue instead of being refused.
 */
import { readStandby, removeStandby, writeStandby, type Standby } from '../common/standby.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, statSync, type Stats } from 'node:fs';
import { chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Backend, BackendHandle, ExitReport, RuntimeState, ServiceSpec, StopMode } from '../backend.js';
import { JitsuError, errorCode, errorMessage } from '../../errors.js';
import { isLinkPassing, linkExists, netnsName, prepareServiceNetns, resetConnections, setLinkPassing } from '../../network/index.js';
import { claimedAll, findInRoot, notPreBoundNote, preloadWorks, programLinkage, servingProbe } from '../common/activation.js';
import { callAborted, type BoundedCall } from '../common/abort.js';
import { handleCodec } from '../common/handle.js';
import { activatePath, preloadPath } from '../common/launcher.js';
import { READY_SPINS, pollPacer, pollUntil } from '../common/readiness.js';
import { LOG_MAX_BYTES, logSince } from '../common/logs.js';
import { inNetns, isAlive, netnsLink, readProcStat } from '../common/proc.js';
import { tcpListeningAt } from '../../network/sockets.js';
import { containerOptions, parseContainerOptions, type ContainerConfig } from './options.js';
import { CLAIMS_FILE, containerProgram, containerUser, defaultOciConfig, serviceOciConfig, type OciConfig } from './oci.js';
import { maskStrategy } from '../../masking/registry.js';
import {
  crunArgv,
  crunCommand,
  hostHasHybridCgroups,
  isNoSuchContainer,
  lastLine,
  mapCrunFailure,
  parseCrunState,
  releaseCreated,
  runCommand,
  runtimeStateOf,
  type CrunOp,
  which,
} from './crun.js';

export interface ContainerBackendOptions {
  /** crun binary (default `crun`). */
  crun?: string;
  /** Limit for `crun run` (container creation). */
  runTimeoutMs?: number;
  /** How long a `shutdown` stop waits after SIGTERM before SIGKILL. */
  shutdownTimeoutMs?: number;
  /** Limit for the quick crun commands. */
  commandTimeoutMs?: number;
  /** Poll interval of the ready and shutdown waits. */
  pollMs?: number;
  /** Force (true/false) or auto-detect (undefined) the private-mount-namespace work-around for hybrid cgroups. */
  hybridCgroups?: boolean;
}

/** Everything about a started container that later calls need; stored in `handle.data`. */
interface ContainerFacts {
  id: string;
  root: string;
  bundle: string;
  log: string;
  crunLog: string;
  hostLink: string;
  /** Ports pre-bound and handed in (socket activation through jitsu-preload.so). */
  activated: boolean;
  /**
   * The veth stays off the bridge until ready(): with mask park/handshake (Synjitsu sees the early SYNs), and
   * when the program binds its ports itself (not pre-bound: its kernel would reset early SYNs).
   */
  parked: boolean;
  /** Host path of the preload library's claims report (activated only; absent in older handles). */
  claims?: string;
  ports: number[];
  startTime: number;
  /** Size of the container log when this container started: its own output begins there. */
  logStart: number;
  /** The service's netns (its connections are reset on stop); set once the netns is known. */
  netns?: string;
  /** Its path (/run/netns/...): a container created ahead must still be in this very netns. */
  netnsPath?: string;
  /** The config has poststart hooks: only `crun start` runs them (else the exec fifo is written directly). */
  poststartHooks?: boolean;
}

// `precreate=on`: the container created ahead (crun create) for the next start (a Standby record,
// common/standby.ts); one made for another service definition is removed, never started.

/**
 * What a created container was made from: the service spec (keys, network, mask) and, for a bundle,
 * its config.json's mtime. A different key means the container no longer matches the service.
 */
function standbyKey(spec: ServiceSpec, config: ContainerConfig): string {
  const bundleStamp = config.bundle === undefined ? '' : String(statSyncOrUndefined(join(config.bundle, 'config.json'))?.mtimeMs ?? 'none');
  return createHash('sha256').update(JSON.stringify(spec)).update('\0').update(bundleStamp).digest('hex').slice(0, 32);
}

function statSyncOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}


/**
 * A created container can be started only if its init still waits (same pid, same start time), in
 * the service's current netns (a restarted daemon may have replaced the netns), with its state in
 * crun's root and the host side of its veth present.
 */
function standbyUsable(f: ContainerFacts, pid: number | undefined): boolean {
  if (!isAlive(pid, f.startTime) || f.netnsPath === undefined) return false;
  if (!existsSync(join(f.root, f.id)) || !linkExists(f.hostLink)) return false;
  return inNetns(pid!, netnsLink(f.netnsPath));
}

/**
 * Container id and hostname: the netns name (`jitsu-<service>`), which is already within crun's id
 * alphabet and unique per service (a name that had to be changed gets a hash suffix). Unique matters:
 * crun's cgroupfs paths are named after the id, host-wide.
 */
export function containerId(service: string): string {
  return netnsName(service);
}

/**
 * Netns this process prepared, by service: a later start only checks (sysfs, no exec) that the netns
 * and veth are still there instead of re-running prepareServiceNetns's `ip` check (≈ 3 ms).
 * Nothing else in this daemon changes a prepared netns; if it was removed, it is prepared again.
 */
const preparedNetns = new Map<string, { key: string; netnsPath: string; hostLink: string; netns: string }>();

async function serviceNetns(spec: ServiceSpec, linkUp: boolean): Promise<{ netnsPath: string; hostLink: string; netns: string }> {
  const key = JSON.stringify(spec.network);
  const known = preparedNetns.get(spec.service);
  if (known && known.key === key && existsSync(known.netnsPath) && linkExists(known.hostLink)) {
    if (isLinkPassing(known.hostLink) !== linkUp) await setLinkPassing(known.hostLink, linkUp);
    return known;
  }
  const net = await prepareServiceNetns(spec.network, spec.service, { hostLinkPassing: linkUp });
  const entry = { key, netnsPath: net.netnsPath, hostLink: net.hostLink, netns: net.netns };
  preparedNetns.set(spec.service, entry);
  return entry;
}

/** Every crun call names the container by id under its state root. */
const containerHandle = handleCodec<ContainerFacts>({ backend: 'container', required: { id: 'string', root: 'string' } });
const checkContainerHandle = (h: BackendHandle): unknown => containerHandle.read(h);

function facts(handle: BackendHandle): ContainerFacts {
  return containerHandle.read(handle).data;
}

const aborted = (call: BoundedCall, service: string, signal: AbortSignal): JitsuError => callAborted('container', call, service, signal);

/** Runs the launcher and waits for it to exit. stdio is not piped: the launcher's log writer keeps its fds for life. */
function runLauncher(argv: readonly string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, error: err.message });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

async function loadBaseConfig(service: string, config: ContainerConfig): Promise<OciConfig> {
  if (config.rootfs !== undefined) {
    const st = await stat(config.rootfs).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new JitsuError('CONFIG_INVALID', `service ${service}: rootfs: ${config.rootfs} is not a directory (build one with scripts/build-rootfs.sh)`, { service, key: 'rootfs' });
    }
    return defaultOciConfig(config.rootfs, config.args ?? []);
  }
  const path = join(config.bundle!, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new JitsuError('CONFIG_INVALID', `service ${service}: bundle: ${path} is missing: give an OCI bundle directory (crun spec makes one)`, { service, key: 'bundle' });
  }
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
    return doc as OciConfig;
  } catch (err) {
    throw new JitsuError('CONFIG_INVALID', `service ${service}: bundle: ${path} is not a valid OCI config (${(err as Error).message})`, { service, key: 'bundle' });
  }
}

export function createContainerBackend(opts: ContainerBackendOptions = {}): Backend {
  const crunBin = opts.crun ?? which('crun');
  const runTimeoutMs = opts.runTimeoutMs ?? 30_000;
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 10_000;
  const commandTimeoutMs = opts.commandTimeoutMs ?? 10_000;
  const pollMs = opts.pollMs ?? 2;
  const hybrid = (): boolean => opts.hybridCgroups ?? hostHasHybridCgroups();

  async function crun(op: CrunOp, f: ContainerFacts, args: string[]): Promise<string> {
    const r = await runCommand(crunCommand({ crun: crunBin, root: f.root }, args, hybrid()), commandTimeoutMs);
    if (r.exitCode === 0) return r.stdout;
    throw mapCrunFailure(op, f.id, r, '');
  }

  /** Is the container's main process still alive (and still ours: same start time)? */
  function alive(handle: BackendHandle): boolean {
    return isAlive(handle.pid, facts(handle).startTime);
  }

  function bootFailure(service: string, f: ContainerFacts, what: string): JitsuError {
    const tail = logSince(f.log, f.logStart);
    const cause = tail.at(-1) ?? 'no output';
    return new JitsuError('BOOT_FAILED', `container for service ${service} ${what}: ${cause}`, { service, container: f.id, cause, log: f.log, logTail: tail });
  }

  /** Removes the container whatever its state; a container that is already gone is fine. */
  async function remove(f: ContainerFacts): Promise<void> {
    if (!existsSync(join(f.root, f.id))) return;
    try {
      await crun('delete', f, crunArgv.delete(f.id));
    } catch (err) {
      if (errorCode(err) !== 'NOT_RUNNING') throw err;
    }
  }

  async function linkDown(f: ContainerFacts): Promise<void> {
    // A stopped service must not answer ARP or RST SYNs (Synjitsu and summon-on-SYN rely on that).
    if (linkExists(f.hostLink)) await setLinkPassing(f.hostLink, false);
  }

  /** Removes a created container (and its record); a failure to is logged by the caller via the error. */
  async function discardStandby(spec: ServiceSpec, held: Standby): Promise<void> {
    await backend.stop(held.handle, spec, 'destroy', AbortSignal.timeout(commandTimeoutMs * 2));
    removeStandby(spec.runDir);
  }

  /**
   * Starts the container created ahead: its network comes up (unless parked) while `crun start`
   * lets its init exec the program. Undefined when it cannot be used (then it is removed and the
   * caller creates a fresh one): other keys, its init gone, or `crun start` refusing it.
   */
  async function startStandby(spec: ServiceSpec, config: ContainerConfig, held: Standby, signal: AbortSignal): Promise<BackendHandle | undefined> {
    const f = facts(held.handle);
    // The record is consumed whatever happens next: a started container is a running one, not a standby.
    removeStandby(spec.runDir);
    if (!config.precreate || held.key !== standbyKey(spec, config) || !standbyUsable(f, held.handle.pid)) {
      await backend.stop(held.handle, spec, 'destroy', AbortSignal.timeout(commandTimeoutMs * 2)).catch(() => undefined);
      return undefined;
    }
    if (signal.aborted) throw aborted('start', spec.service, signal);
    // Only these two remain on the summon path: all the rest was done by prepare().
    const release = async (): Promise<void> => {
      if (f.poststartHooks || !releaseCreated(f.root, f.id)) await crun('start', f, crunArgv.start(f.id));
    };
    const [started, link] = await Promise.allSettled([release(), f.parked ? undefined : setLinkPassing(f.hostLink, true)]);
    if (started.status === 'rejected') {
      appendFileSync(f.log, `jitsu: the container created ahead could not be started (${errorMessage(started.reason)}); creating a new one\n`);
      await backend.stop(held.handle, spec, 'destroy', AbortSignal.timeout(commandTimeoutMs * 2)).catch(() => undefined);
      return undefined;
    }
    if (link.status === 'rejected') {
      await backend.stop(held.handle, spec, 'destroy', new AbortController().signal).catch(() => undefined);
      throw link.reason;
    }
    if (signal.aborted) {
      await backend.stop(held.handle, spec, 'destroy', new AbortController().signal);
      throw aborted('start', spec.service, signal);
    }
    return held.handle;
  }

  /**
   * A new container: the netns (prepared or adopted), the OCI config, the launcher with its
   * pre-bound sockets, then `crun run --detach` (running at once) or `crun create` (created ahead:
   * namespaces, mounts and sockets set up, the init waiting for `crun start`; its veth stays off the bridge).
   */
  async function launch(spec: ServiceSpec, config: ContainerConfig, op: 'run' | 'create', signal: AbortSignal): Promise<BackendHandle> {
    const base = await loadBaseConfig(spec.service, config);
    if (signal.aborted) throw aborted('start', spec.service, signal);
    const id = containerId(spec.service);
    // Pre-bound sockets reach a program that binds its own port only through jitsu-preload.so,
    // which a static (or non-glibc) program never loads: such a program binds the port itself.
    let selfBound: string | undefined;
    const strategy = maskStrategy(spec.mask);
    if (strategy.requires === 'prebind' && config.ports.length > 0) {
      const { root, program, path } = containerProgram(base, config, config.bundle);
      const linkage = program === undefined ? 'unknown' : programLinkage(findInRoot(program, path, root) ?? program, root);
      if (!preloadWorks(linkage)) selfBound = notPreBoundNote(program ?? 'the container process', linkage, config.ports);
    }
    const activated = strategy.requires === 'prebind' && config.ports.length > 0 && selfBound === undefined;
    const parked = strategy.linkUp === 'ready' || selfBound !== undefined;
    const reportDir = join(spec.runDir, 'activation');
    const f: ContainerFacts = {
      id,
      root: join(spec.runDir, 'crun'),
      bundle: join(spec.runDir, 'bundle'),
      log: join(spec.runDir, 'container.log'),
      crunLog: join(spec.runDir, 'crun.log'),
      hostLink: '',
      activated,
      parked,
      ports: config.ports,
      startTime: 0,
      logStart: 0,
      ...(activated ? { claims: join(reportDir, CLAIMS_FILE) } : {}),
    };
    const [net] = await Promise.all([
      // Up at once (activated sockets queue SYNs; unmasked clients come after ready), except when
      // parked, or created ahead: a stopped service must not answer ARP (startStandby brings it up).
      serviceNetns(spec, !parked && op === 'run'),
      mkdir(f.root, { recursive: true }),
      mkdir(f.bundle, { recursive: true }),
      activated ? mkdir(reportDir, { recursive: true }) : undefined,
    ]);
    f.hostLink = net.hostLink;
    const oci = serviceOciConfig(
      base,
      { config, hostname: id, netnsPath: net.netnsPath, listenPorts: activated ? config.ports : [], ...(activated ? { preload: { library: preloadPath(), reportDir } } : {}) },
      config.bundle,
    );
    const hooks = oci['hooks'];
    if (typeof hooks === 'object' && hooks !== null && !Array.isArray(hooks) && Array.isArray(hooks['poststart']) && hooks['poststart'].length > 0) f.poststartHooks = true;
    const pidFile = join(spec.runDir, 'container.pid');
    // jitsu-preload.so writes its claims there as the container's user.
    if (activated) await chown(reportDir, containerUser(oci).uid, containerUser(oci).gid);
    await Promise.all([
      writeFile(join(f.bundle, 'config.json'), JSON.stringify(oci)),
      writeFile(f.crunLog, ''),
      rm(pidFile, { force: true }),
      f.claims ? rm(f.claims, { force: true }) : undefined,
      // A container left by a previous daemon or a failed stop would make `crun run` fail on the id.
      remove(f),
    ]);

    f.logStart = (await stat(f.log).catch(() => undefined))?.size ?? 0;
    if (selfBound) appendFileSync(f.log, selfBound);
    const any = spec.network.family === 6 ? '[::]' : '';
    const launcher = [activatePath()];
    if (activated) {
      launcher.push('--netns', net.netnsPath);
      for (const port of config.ports) launcher.push('--listen', `tcp:${any}:${port}`);
    }
    launcher.push('--log', f.log, '--log-max', String(LOG_MAX_BYTES), '--');
    const argv = [
      ...launcher,
      ...crunCommand({ crun: crunBin, root: f.root, log: f.crunLog }, crunArgv[op](id, f.bundle, pidFile, activated ? config.ports.length : 0), hybrid()),
    ];
    const res = await runLauncher(argv, runTimeoutMs);
    if (res.code !== 0) {
      const crunSays = lastLine(await readFile(f.crunLog, 'utf8').catch(() => ''));
      const cause = crunSays || res.error || logSince(f.log, f.logStart).at(-1) || `exit ${res.code ?? res.signal}`;
      await remove(f).catch(() => undefined);
      await linkDown(f).catch(() => undefined);
      if (res.error && /ENOENT/.test(res.error)) {
        throw new JitsuError('NATIVE_UNAVAILABLE', `cannot run the launcher ${argv[0]}: ${res.error} (run npm run build:native)`, { service: spec.service });
      }
      throw new JitsuError('BOOT_FAILED', `crun could not ${op === 'run' ? 'start' : 'create'} the container for service ${spec.service}: ${cause}`, {
        service: spec.service,
        container: id,
        cause,
        exitCode: res.code,
        log: f.log,
        reason: isNoSuchContainer(cause) ? 'crun-state' : `crun-${op}`,
      });
    }
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    const st = pid > 0 ? readProcStat(pid) : undefined;
    f.startTime = st?.startTime ?? 0;
    const handle: BackendHandle = {
      backend: 'container',
      service: spec.service,
      link: net.hostLink,
      mac: spec.network.mac,
      data: containerHandle.write({ ...f, netns: net.netns, netnsPath: net.netnsPath }),
    };
    if (pid > 0) handle.pid = pid;
    if (signal.aborted) {
      await backend.stop(handle, spec, 'destroy', new AbortController().signal);
      throw aborted('start', spec.service, signal);
    }
    return handle;
  }

  const backend: Backend = {
    name: 'container',
    summary: 'OCI containers run by crun in the service netns, with socket activation (port=)',
    capabilities: { stopModes: ['destroy', 'shutdown', 'suspend'], exitWatch: 'pid', netns: true, masking: { prebind: true, hold: true }, defaultMask: 'activate' },
    options: containerOptions,

    async start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle> {
      const config = parseContainerOptions(spec.service, spec.options);
      const held = readStandby(spec.runDir, checkContainerHandle);
      if (held) {
        const started = await startStandby(spec, config, held, signal);
        if (started) return started;
      }
      return launch(spec, config, 'run', signal);
    },

    async prepare(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | undefined> {
      const config = parseContainerOptions(spec.service, spec.options);
      const held = readStandby(spec.runDir, checkContainerHandle);
      const key = standbyKey(spec, config);
      if (held && config.precreate && held.key === key && standbyUsable(facts(held.handle), held.handle.pid)) return held.handle;
      // Anything else held is stale (other keys, its init gone, an old netns) or no longer wanted.
      if (held) await discardStandby(spec, held);
      if (!config.precreate) return undefined;
      const handle = await launch(spec, config, 'create', signal);
      writeStandby(spec.runDir, { key, handle });
      return handle;
    },


    async ready(handle, spec, signal) {
      const f = facts(handle);
      // Serving means: every pre-bound port taken over by the program (its claims report), and every
      // other probed port (ready=tcp:PORT, else the first port=) listening at its address in its netns.
      const wanted = spec.ready ? [spec.ready.port] : f.activated ? f.ports : f.ports.slice(0, 1);
      const probe = servingProbe(wanted, f.activated && f.claims ? f.ports : []);
      const nextCheck = pollPacer({ spins: READY_SPINS, firstMs: Math.min(1, pollMs), maxMs: pollMs });
      for (;;) {
        if (signal.aborted) throw aborted('ready', handle.service, signal);
        if (!alive(handle)) throw bootFailure(handle.service, f, 'exited before it was ready');
        const claimed = probe.claim.length === 0 || claimedAll(f.claims!, probe.claim);
        if (claimed && (probe.listen === 'any' || probe.listen.length === 0 || tcpListeningAt(handle.pid!, spec.network, probe.listen))) break;
        await nextCheck();
      }
      // Parked: from here the container's own kernel answers ARP and SYNs (Synjitsu hands over now).
      if (f.parked) await setLinkPassing(f.hostLink, true);
    },

    async stop(handle, _spec, mode: StopMode, signal) {
      const f = facts(handle);
      if (signal.aborted) throw aborted('stop', handle.service, signal);
      if (mode === 'suspend') {
        try {
          await crun('pause', f, crunArgv.pause(f.id));
        } catch (err) {
          // Suspending a container that already ended is a no-op, like any stop of a stopped service.
          if (errorCode(err) !== 'NOT_RUNNING' && alive(handle)) throw err;
        }
        return;
      }
      if (mode === 'shutdown' && alive(handle)) {
        await crun('kill', f, crunArgv.kill(f.id, 'TERM')).catch(() => undefined);
        // A paused container cannot act on TERM; let it run so it can.
        await crun('resume', f, crunArgv.resume(f.id)).catch(() => undefined);
        // Bounded by our own limit and by the caller's deadline, whichever comes first; then KILL.
        const every = Math.max(pollMs, 10);
        await pollUntil(() => !alive(handle), shutdownTimeoutMs, { firstMs: every, maxMs: every }, signal);
      }
      // Its clients get a RST now, while the link is still up (see network/reset.ts).
      if (f.netns !== undefined) await resetConnections(f.netns);
      if (alive(handle)) await crun('kill', f, crunArgv.kill(f.id, 'KILL')).catch(() => undefined);
      await remove(f);
      // A record of a container created ahead names this id: whatever it said is gone now.
      removeStandby(dirname(f.root));
      await linkDown(f);
    },

    async exitReport(handle): Promise<ExitReport> {
      // The container's init is reaped by crun's reaper, not us: no status, but its last words.
      const f = facts(handle);
      return { reason: 'vanished', cause: `the container's main process ${handle.pid ?? '?'} ended`, logTail: logSince(f.log, f.logStart) };
    },

    async resume(handle, _spec, signal) {
      if (signal.aborted) throw aborted('resume', handle.service, signal);
      const f = facts(handle);
      await crun('resume', f, crunArgv.resume(f.id));
    },

    async state(handle): Promise<RuntimeState> {
      const f = facts(handle);
      if (!existsSync(join(f.root, f.id))) return 'stopped';
      try {
        return runtimeStateOf(parseCrunState(await crun('state', f, crunArgv.state(f.id))).status);
      } catch (err) {
        return errorCode(err) === 'NOT_RUNNING' ? 'stopped' : 'unknown';
      }
    },
  };
  return backend;
}

export const backend: Backend = createContainerBackend();
