/**
 * The backend contract. Everything that crosses it is plain JSON so a call can run on any worker
 * thread of the pool and a handle can be persisted in the state dir and adopted after a restart.
 */
export type BackendName = 'process' | 'qemu' | 'libvirt' | 'container' | 'xl';
export const BACKEND_NAMES: readonly BackendName[] = ['process', 'qemu', 'libvirt', 'container', 'xl'];

export type StopMode = 'destroy' | 'suspend' | 'shutdown';
export const STOP_MODES: readonly StopMode[] = ['destroy', 'suspend', 'shutdown'];

export type MaskMode = 'none' | 'park' | 'handshake' | 'activate';
export const MASK_MODES: readonly MaskMode[] = ['none', 'park', 'handshake', 'activate'];

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
}

export type RuntimeState = 'running' | 'paused' | 'stopped' | 'unknown';

export interface BackendCapabilities {
  stopModes: readonly StopMode[];
  /** Which `mask=` modes make sense for this backend. */
  maskModes: readonly MaskMode[];
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
}

export interface Backend {
  readonly name: BackendName;
  readonly summary: string;
  readonly capabilities: BackendCapabilities;
  readonly options: readonly OptionSpec[];
  /** Start (or cold-boot) the service. Must clean up after itself when `signal` aborts. */
  start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle>;
  /** Resolves once the service's network is up (guest's first frame, or the `ready` probe). */
  ready(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void>;
  /** Stop with the given mode; idempotent (stopping a stopped service is fine). */
  stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, signal: AbortSignal): Promise<void>;
  /** Resume a service stopped with mode `suspend`. */
  resume?(handle: BackendHandle, spec: ServiceSpec, signal: AbortSignal): Promise<void>;
  state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState>;
}
