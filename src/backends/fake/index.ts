import type { Backend, BackendHandle, ExitReport, RuntimeState, ServiceSpec, StopMode } from '../backend.js';
import { JitsuError } from '../../errors.js';
import { abortableSleep } from '../common/sleep.js';

/**
 * In-memory backend for unit tests of the lifecycle only (never registered for users). Boots take
 * `bootMs`; `failNext` makes the next start fail; every call is recorded for assertions.
 */
export interface FakeBackend extends Backend {
  calls: string[];
  running: Map<string, RuntimeState>;
  bootMs: number;
  readyMs: number;
  failNext: number;
  /** What exitReport() says about a service that ended. */
  exitWith: ExitReport;
  /** prepare() holds a standby per service (like precreate=on); off: it holds nothing. */
  prepares: boolean;
  /** How long a prepare() takes. */
  prepareMs: number;
  /** Standbys held, by service: start() takes one over, stop() of its handle removes it. */
  held: Map<string, BackendHandle>;
}

const timedOut = (): JitsuError => new JitsuError('BOOT_TIMEOUT', 'timed out');

export function createFakeBackend(): FakeBackend {
  let nextPid = 1000;
  const fake: FakeBackend = {
    name: 'process',
    summary: 'fake backend for unit tests',
    capabilities: { stopModes: ['destroy', 'suspend', 'shutdown'], exitWatch: 'pid', netns: false, masking: { prebind: true, hold: true }, defaultMask: 'none' },
    options: [],
    calls: [],
    running: new Map(),
    bootMs: 20,
    readyMs: 5,
    failNext: 0,
    exitWith: { reason: 'killed', cause: 'killed by SIGKILL', logTail: ['last words'] },
    prepares: false,
    prepareMs: 5,
    held: new Map(),
    async prepare(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle | undefined> {
      const held = fake.held.get(spec.service);
      if (!fake.prepares) {
        if (held) fake.held.delete(spec.service);
        return undefined;
      }
      if (held) {
        fake.calls.push(`prepare ${spec.service} kept ${held.pid}`);
        return held;
      }
      fake.calls.push(`prepare ${spec.service}`);
      await abortableSleep(fake.prepareMs, signal, timedOut);
      const handle: BackendHandle = { backend: 'process', service: spec.service, pid: nextPid++, data: { startTime: 1, standby: true } };
      fake.held.set(spec.service, handle);
      return handle;
    },
    async start(spec: ServiceSpec, signal: AbortSignal): Promise<BackendHandle> {
      const held = fake.held.get(spec.service);
      if (held) {
        fake.held.delete(spec.service);
        fake.calls.push(`start ${spec.service} from ${held.pid}`);
        fake.running.set(spec.service, 'running');
        return { ...held, data: { startTime: 1 } };
      }
      fake.calls.push(`start ${spec.service}`);
      await abortableSleep(fake.bootMs, signal, timedOut);
      if (fake.failNext > 0) {
        fake.failNext--;
        throw new JitsuError('BOOT_FAILED', `${spec.service} exited with status 1`, { logTail: ['exec: not found'] });
      }
      fake.running.set(spec.service, 'running');
      // startTime: a pid-watched handle names its process by pid and start time.
      return { backend: 'process', service: spec.service, pid: nextPid++, data: { startTime: 1 } };
    },
    async ready(handle: BackendHandle, _spec: ServiceSpec, signal: AbortSignal): Promise<void> {
      fake.calls.push(`ready ${handle.service}`);
      await abortableSleep(fake.readyMs, signal, timedOut);
    },
    async stop(handle: BackendHandle, _spec: ServiceSpec, mode: StopMode): Promise<void> {
      if (handle.data['standby'] === true) {
        fake.calls.push(`stop ${handle.service} standby ${handle.pid} ${mode}`);
        if (fake.held.get(handle.service)?.pid === handle.pid) fake.held.delete(handle.service);
        return;
      }
      fake.calls.push(`stop ${handle.service} ${mode}`);
      fake.running.set(handle.service, mode === 'suspend' ? 'paused' : 'stopped');
    },
    async resume(handle: BackendHandle): Promise<void> {
      fake.calls.push(`resume ${handle.service}`);
      fake.running.set(handle.service, 'running');
    },
    async state(handle: BackendHandle): Promise<RuntimeState> {
      return fake.running.get(handle.service) ?? 'stopped';
    },
    async exitReport(handle: BackendHandle): Promise<ExitReport> {
      fake.calls.push(`exitReport ${handle.service}`);
      return fake.exitWith;
    },
  };
  return fake;
}
