import { bootBackend, vanishedReport, type Backend, type BackendHandle, type BackendName, type ExitReport, type RuntimeState, type ServiceSpec, type StopMode } from '../backends/backend.js';
import { JitsuError } from '../errors.js';
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
   * The handle start() returned, before ready() is done (to persist what now runs). Called once,
   * before boot() settles, whenever start() succeeded — also when ready() then fails.
   */
  onStarted: (handle: BackendHandle) => void;
  /** When the backend saw the service ready (epoch ms). */
  onSettled?: (epochMs: number) => void;
}

export interface BackendCalls {
  /** Backend start() then ready() in one call (one hop to a worker and back per boot); resolves with start()'s handle. */
  boot(spec: ServiceSpec, timeoutMs: number, hooks: BootHooks): Promise<BackendHandle>;
  /** Backend.prepare (optional there and here): what the next start may take over, held while stopped. */
  prepare?(spec: ServiceSpec, timeoutMs: number): Promise<BackendHandle | undefined>;
  /** Backend ready() alone (after a resume); `onSettled` learns when the backend saw the service ready (epoch ms). */
  ready(handle: BackendHandle, spec: ServiceSpec, timeoutMs: number, onSettled?: (epochMs: number) => void): Promise<void>;
  stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, timeoutMs: number): Promise<void>;
  /** A new handle when the backend replaced the service's process (hibernate). */
  resume(handle: BackendHandle, spec: ServiceSpec, timeoutMs: number): Promise<BackendHandle | undefined>;
  state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState>;
  /** How a service that was ready ended (status, signal, log tail). */
  exitReport(handle: BackendHandle, spec: ServiceSpec): Promise<ExitReport>;
  close(): Promise<void>;
}

/** Runs backend calls on the calling thread. For tests and tools; the daemon uses the pool. */
export function directCalls(lookup: (name: BackendName) => Backend): BackendCalls {
  return {
    boot: async (spec, ms, hooks) => {
      hooks.onCalled?.(epochNow());
      const handle = await bootBackend(lookup(spec.backend), spec, AbortSignal.timeout(ms), hooks.onStarted);
      hooks.onSettled?.(epochNow());
      return handle;
    },
    prepare: async (spec, ms) => {
      const backend = lookup(spec.backend);
      return backend.prepare ? backend.prepare(spec, AbortSignal.timeout(ms)) : undefined;
    },
    ready: async (handle, spec, ms, onSettled) => {
      await lookup(spec.backend).ready(handle, spec, AbortSignal.timeout(ms));
      onSettled?.(epochNow());
    },
    stop: (handle, spec, mode, ms) => lookup(spec.backend).stop(handle, spec, mode, AbortSignal.timeout(ms)),
    resume: async (handle, spec, ms) => {
      const backend = lookup(spec.backend);
      if (!backend.resume) throw new JitsuError('BACKEND_UNSUPPORTED', `the ${backend.name} backend cannot resume a suspended service`);
      return (await backend.resume(handle, spec, AbortSignal.timeout(ms))) ?? undefined;
    },
    state: (handle, spec) => lookup(spec.backend).state(handle, spec),
    exitReport: async (handle, spec) => {
      const backend = lookup(spec.backend);
      return backend.exitReport ? backend.exitReport(handle, spec) : vanishedReport(backend.name);
    },
    close: async () => undefined,
  };
}
