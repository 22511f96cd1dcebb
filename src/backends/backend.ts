/**
 * The backend contract. Everything that crosses it is plain JSON so a call can run on any worker
 * thread of the pool and a handle can be persisted in the state dir and adopted after a restart.
 */
export type BackendName = 'process' | 'qemu' | 'libvirt' | 'container' | 'xl';
export const BACKEND_NAMES: readonly BackendName[] = ['process', 'qemu', 'libvirt', 'container', 'xl'];

/**
 * How an idle service stops. `suspend`: paused in place, resumed in place. `hibernate`: saved with
 * its memory to the snapshot dir and ended (its memory and CPU freed); resuming restores it exactly
 * where it was. `shutdown`: the guest powers off; `destroy`: ended at once.
 */
export type StopMode = 'destroy' | 'suspend' | 'shutdown' | 'hibernate';
export const STOP_MODES: readonly StopMode[] = ['destroy', 'suspend', 'shutdown', 'hibernate'];

/** Modes after which the service keeps its handle and comes back with resume(), not start(). */
export function stopKeepsHandle(mode: StopMode): boolean {
  return mode === 'suspend' || mode === 'hibernate';
}

import { JitsuError } from '../errors.js';
import type { MaskMode, MaskRequirement } from '../masking/registry.js';
export type { MaskMode } from '../masking/registry.js';
export { MASK_MODES } from '../masking/registry.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Where a service sits on the daemon's bridge. */
export interface ServiceNetwork {
  /** Host bridge the service's veth or tap is attached to (e.g. `jitsu0`). */
  bridge: string;
  family: 4 | 6;
  /** The service's own address. */
  ip: string;
  prefixLength: number;
  /** The host's address on the bridge in the service's subnet; the service's default route. */
  gateway: string;
  /** Locally administered MAC the service's interface uses (stable per service name). */
  mac: string;
}

export interface ReadyProbe {
  kind: 'tcp';
  port: number;
}

export interface ServiceSpec {
  /** Unique service name (`name=` key). */
  service: string;
  backend: BackendName;
  /** `-c` backend URI (libvirt connection URI, ...); backend-specific. */
  backendUri?: string;
  network: ServiceNetwork;
  mask: MaskMode;
  /** Backend keys from the service argument; repeatable keys keep their order. */
  options: Readonly<Record<string, readonly string[]>>;
  ready?: ReadyProbe;
  /** Directory this service's backend may write into (pid files, QMP sockets, logs). Exists. */
  runDir: string;
  /** Where memory snapshots go and how much of it all of them may use (--snapshot-dir, --snapshot-max-mb). */
  snapshots?: SnapshotStore;
}

export interface SnapshotStore {
  dir: string;
  maxBytes: number;
}

export interface BackendHandle {
  backend: BackendName;
  service: string;
  /** Host-side link of the service (veth or tap): where Synjitsu replays parked SYNs. */
  link?: string;
  /** MAC of the service's interface, as seen on the bridge. */
  mac?: string;
  /** Main process of the service on this host, if any (QEMU, the exec'd process, crun). */
  pid?: number;
  /** Backend-specific facts (netns name, QMP socket, domain name, ...). */
  data: { [key: string]: JsonValue };
  /** What the log should say about how this start went (restored from a snapshot, or why not). */
  notes?: string[];
}

export type RuntimeState = 'running' | 'paused' | 'stopped' | 'unknown';

/**
 * How the daemon sees a service die after it was ready. `pid`: the handle's `pid` (with
 * `data.startTime`, its start time in clock ticks) is the service's main process, and its exit is
 * the service's end: watched with a pidfd, seen at once. `poll`: no such process on this host
 * (libvirt, xl): `state()` is asked on every sweep.
 */
export type ExitWatch = 'pid' | 'poll';

/** Why a service that was ready is gone, for the log and `jitsu_service_exits_total{reason}`. */
export type ExitReason = 'exited' | 'failed' | 'killed' | 'panicked' | 'vanished';
export const EXIT_REASONS: readonly ExitReason[] = ['exited', 'failed', 'killed', 'panicked', 'vanished'];

/** What a backend can tell about a service that ended on its own. */
export interface ExitReport {
  reason: ExitReason;
  /** One line: "exited with status 3", "killed by signal 9 (SIGKILL)", "guest kernel panic". */
  cause: string;
  /** The last lines of the service's log or console, oldest first. */
  logTail: string[];
}

/** The report of a backend with no exit report of its own: polling found the service gone. */
export function vanishedReport(backend: BackendName): ExitReport {
  return { reason: 'vanished', cause: `no longer running (seen by polling the ${backend} backend)`, logTail: [] };
}

export interface BackendCapabilities {
  stopModes: readonly StopMode[];
  exitWatch: ExitWatch;
  /** The service runs in its own network namespace that the daemon prepares (src/network), with its main pid inside it. */
  netns: boolean;
  /** Which `mask=` modes make sense for this backend. */
  /** What it can do for boot masking; the strategies it supports follow (masking/registry.ts supportedMasks). */
  masking: Readonly<Record<MaskRequirement, boolean>>;
  /** The mask used when the service does not name one. */
  defaultMask: MaskMode;
}

/** One backend key, for `--help`, config validation and docs. */
export interface OptionSpec {
  key: string;
  description: string;
  repeatable?: boolean;
  required?: boolean;
  example?: string;
  /** Returns an error message naming the fix, or undefined when the value is fine. */
  validate?: (value: string) => string | undefined;
  /** When the key is given: how it conflicts with the service's other keys (a message naming the fix), or undefined. */
  conflicts?: (options: Readonly<Record<string, readonly string[]>>) => string | undefined;
}

export interface Backend {
  readonly name: BackendName;
  readonly summary: string;
  readonly capabilities: BackendCapabilities;
  readonly options: readonly OptionSpec[];
  /** Start (or cold-boot) the service. Must clean up after itself when `signal` aborts. */
  start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle>;
  /**
   * Optional: get the next start() ready ahead of time while the service is stopped (the container
   * backend's `precreate=on`: a container created, waiting to be started). Called off the DNS path,
   * after a stop and once at daemon start, never while a start runs; idempotent (what is there and
   * still good is kept). Returns a handle to what is held — the daemon persists it and, when the
   * service goes away (shutdown, reload, no longer configured), stops it with `destroy` — or
   * undefined when the service's keys ask for nothing (anything held from before is removed).
   * The next start() takes it over or removes it.
   */
  prepare?(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | undefined>;
  /** Resolves once the service's network is up (guest's first frame, or the `ready` probe). */
  ready(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void>;
  /** Stop with the given mode; idempotent (stopping a stopped service is fine). */
  stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, signal: AbortSignal): Promise<void>;
  /** Resume a service stopped with mode `suspend` or `hibernate`; a new handle when its process changed (hibernate). */
  resume?(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | void>;
  state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState>;
  /** Called once a ready service was seen gone: how it ended (status, signal, log tail). */
  exitReport?(handle: BackendHandle, spec: ServiceSpec): Promise<ExitReport>;
}

/** Backend resume(), or BACKEND_UNSUPPORTED for a backend without one; a new handle when its process changed. */
export async function resumeBackend(backend: Backend, handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | undefined> {
  if (!backend.resume) throw new JitsuError('BACKEND_UNSUPPORTED', `the ${backend.name} backend cannot resume a suspended service`, { backend: backend.name });
  return (await backend.resume(handle, spec, signal)) ?? undefined;
}

/**
 * A boot: start() — or resume() of `suspended`, a service stopped with suspend or hibernate — then
 * ready() of what runs, under one signal. `onStarted` gets the handle in between (resume()'s new
 * one, or the same), so that what now runs is known (persisted, cleaned up after a failure) while
 * ready() still waits; the handle ready() gets carries no notes.
 */
export async function bootBackend(
  backend: Backend,
  spec: ServiceSpec,
  signal: AbortSignal,
  onStarted: (handle: BackendHandle) => void,
  suspended?: BackendHandle,
): Promise<BackendHandle> {
  const started = suspended === undefined ? await backend.start(spec, signal) : ((await resumeBackend(backend, suspended, spec, signal)) ?? suspended);
  onStarted(started);
  const { notes: _notes, ...handle } = started;
  await backend.ready(handle, spec, signal);
  return started;
}
