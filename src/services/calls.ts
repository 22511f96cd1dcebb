import { bootBackend, vanishedReport, type Backend, type BackendHandle, type BackendName, type ExitReport, type RuntimeState, type ServiceSpec, type StopMode } from '../backends/backend.js';
import { epochNow } from '../pool/protocol.js';

/**
 * How the lifecycle reaches a backend. In the daemon this is the worker pool (src/pool), so backend
 * work never runs on the DNS thread; unit tests use `directCalls` with a fake backend. Every call
 * carries a time budget instead of a signal, because signals cannot cross threads.
 */
export interface BootHooks {
  /** When the backend's start began (epoch ms, see epochNow), for overhead metrics. */
  onCalled?: (epochMs: number) => void;
  /**
   * The handle start() (or resume()) returned, before ready() is done (to persist what now runs).
   * Called once, before boot() settles, whenever that call succeeded — also when ready() then fails.
   */
  onStarted: (handle: BackendHandle) => void;
  /** When the backend saw the service ready (epoch ms). */
  onSettled?: (epochMs: number) => void;
}

export interface BackendCalls {
  /**
   * Backend start() — or resume() of `suspended` — then ready(), in one call: one hop to a worker
   * and back per boot. Resolves with the handle of what runs.
   */
  boot(spec: ServiceSpec, timeoutMs: number, hooks: BootHooks, suspended?: BackendHandle): Promise<BackendHandle>;
  /** Backend.prepare (optional there and here): what the next start may take over, held while stopped. */
  prepare?(spec: ServiceSpec, timeoutMs: number): Promise<BackendHandle | undefined>;
  stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, timeoutMs: number): Promise<void>;
  state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState>;
  /** How a service that was ready ended (status, signal, log tail). */
  exitReport(handle: BackendHandle, spec: ServiceSpec): Promise<ExitReport>;
  close(): Promise<void>;
}

/** Runs backend calls on the calling thread. For tests and tools; the daemon uses the pool. */
export function directCalls(lookup: (name: BackendName) => Backend): BackendCalls {
  return {
    boot: async (spec, ms, hooks, suspended) => {
      hooks.onCalled?.(epochNow());
      const handle = await bootBackend(lookup(spec.backend), spec, AbortSignal.timeout(ms), hooks.onStarted, suspended);
      hooks.onSettled?.(epochNow());
      return handle;
    },
    prepare: async (spec, ms) => {
      const backend = lookup(spec.backend);
      return backend.prepare ? backend.prepare(spec, AbortSignal.timeout(ms)) : undefined;
    },
    stop: (handle, spec, mode, ms) => lookup(spec.backend).stop(handle, spec, mode, AbortSignal.timeout(ms)),
    state: (handle, spec) => lookup(spec.backend).state(handle, spec),
    exitReport: async (handle, spec) => {
      const backend = lookup(spec.backend);
      return backend.exitReport ? backend.exitReport(handle, spec) : vanishedReport(backend.name);
    },
    close: async () => undefined,
  };
}
