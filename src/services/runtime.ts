import type { BackendHandle, MaskMode, RuntimeState, ServiceSpec, StopMode } from '../backends/backend.js';
import { JitsuError, errorCode, errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { PersistedService } from '../state/store.js';
import type { BootMasker, MaskTarget } from '../synjitsu/masker.js';
import type { BackendCalls } from './calls.js';
import { epochNow } from '../pool/protocol.js';
import type { ServiceMetrics } from './metrics.js';
import { SYNJITSU_MASKS, maskTargetOf } from './spec.js';

export type Phase = 'stopped' | 'booting' | 'ready' | 'stopping';

export interface RuntimeDeps {
  calls: BackendCalls;
  masker: BootMasker;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Persist (or forget) this service's handle; failures are logged, never fatal. */
  persist: (entry: PersistedService | undefined) => Promise<void>;
  bootTimeoutMs: number;
  stopTimeoutMs: number;
  now: () => number;
}

/** Masks under which a DNS answer may go out before the service is ready: Synjitsu holds the clients. */
const ANSWER_AT_ONCE = SYNJITSU_MASKS;

export interface RuntimeStatus {
  service: string;
  backend: string;
  ip: string;
  dns: readonly string[];
  mask: MaskMode;
  state: Phase;
  suspended: boolean;
  bootCount: number;
  bootFailures: number;
  lastBootMs: number | null;
  lastError: string | null;
  idleSeconds: number | null;
  pid: number | null;
}

/**
 * One service's lifecycle: stopped -> booting -> ready -> stopping -> stopped. A boot is single-flight:
 * however many queries race, they share one boot promise. A failed boot returns the service to stopped
 * (so the next query retries), resets masked connections, and carries its cause to every waiter.
 */
export class ServiceRuntime {
  phase: Phase = 'stopped';
  handle: BackendHandle | undefined;
  suspended = false;
  bootCount = 0;
  bootFailures = 0;
  lastBootMs: number | undefined;
  lastError: string | undefined;
  /** Time of the last query (or SYN) for this service, from deps.now(). */
  lastActivity = 0;
  private boot: Promise<void> | undefined;
  /** The backend start call of the boot in flight: short, and its handle must never escape a shutdown. */
  private starting: Promise<unknown> | undefined;
  private stopping: Promise<void> | undefined;
  private closing = false;
  private readonly log: Logger;

  constructor(
    readonly spec: ServiceSpec,
    readonly dns: readonly string[],
    private readonly responseDelayMs: number,
    private readonly deps: RuntimeDeps,
  ) {
    this.log = deps.logger.child({ service: spec.service });
  }

  get maskTarget(): MaskTarget {
    return maskTargetOf(this.spec);
  }

  /**
   * Make sure the service is up. `true`: answer now (ready, or booting behind park/handshake masking).
   * Otherwise a promise that resolves when an answer may go out and rejects if the boot fails.
   */
  summon(): true | Promise<void> {
    this.lastActivity = this.deps.now();
    if (this.phase === 'ready') return true;
    // A SYN can still arrive while the daemon stops its services: never start a boot then.
    if (this.closing) return Promise.reject(new JitsuError('ABORTED', `${this.spec.service}: the daemon is shutting down`));
    if (this.phase === 'booting') return ANSWER_AT_ONCE.has(this.spec.mask) ? true : this.boot!;
    const boot = this.startBoot(epochNow());
    if (ANSWER_AT_ONCE.has(this.spec.mask)) {
      // Queries answered at once never see this promise: keep its rejection from going unhandled.
      boot.catch(() => undefined);
      return true;
    }
    return boot;
  }

  /** `summonedAt`: epoch ms (epochNow), comparable with the worker's time of the backend call. */
  private startBoot(summonedAt: number): Promise<void> {
    const previousStop = this.stopping;
    this.phase = 'booting';
    const boot: Promise<void> = (previousStop ? previousStop.then(() => this.runBoot(summonedAt)) : this.runBoot(summonedAt)).finally(() => {
      if (this.boot === boot) this.boot = undefined;
    });
    this.boot = boot;
    return boot;
  }

  private async runBoot(summonedAt: number): Promise<void> {
    const { calls, masker, metrics } = this.deps;
    this.phase = 'booting';
    const startedAt = this.deps.now();
    const deadline = startedAt + this.deps.bootTimeoutMs;
    const remaining = (): number => Math.max(1, Math.ceil(deadline - this.deps.now()));
    this.bootCount++;
    const resuming = this.suspended && this.handle !== undefined;
    const observeStart = (calledAt: number): void => metrics.orchestration.labels({ step: 'query_to_start' }).observe((calledAt - summonedAt) / 1000);
    // Dispatch the backend call first: the bookkeeping below then overlaps the worker's wake-up
    // instead of delaying the boot (a log line is a synchronous write).
    // (an async wrapper so that even a synchronous throw lands in the failure path below)
    const starting = (async () => (resuming ? calls.resume(this.handle!, this.spec, remaining()) : calls.start(this.spec, remaining(), observeStart)))();
    this.starting = starting.catch(() => undefined);
    this.log.info(resuming ? 'resuming' : 'booting', { backend: this.spec.backend, ip: this.spec.network.ip, mask: this.spec.mask });
    if (ANSWER_AT_ONCE.has(this.spec.mask)) masker.booting(this.maskTarget);
    try {
      const started = await starting;
      if (!resuming) {
        this.handle = started as BackendHandle;
        await this.save();
      }
      this.suspended = false;
      let readyAt = epochNow();
      await calls.ready(this.handle!, this.spec, remaining(), (settledAt) => (readyAt = settledAt));
      if (this.closing) throw new JitsuError('ABORTED', `${this.spec.service}: the daemon is shutting down`);
      if (ANSWER_AT_ONCE.has(this.spec.mask)) {
        await masker.ready(this.maskTarget, this.handle!);
        metrics.orchestration.labels({ step: 'ready_to_handover' }).observe((epochNow() - readyAt) / 1000);
      }
      this.phase = 'ready';
      this.lastBootMs = this.deps.now() - startedAt;
      this.lastError = undefined;
      metrics.boots.labels({ service: this.spec.service, result: 'ok' }).inc();
      metrics.bootSeconds.labels({ backend: this.spec.backend }).observe(this.lastBootMs / 1000);
      this.log.info('ready', { boot_ms: this.lastBootMs.toFixed(1), pid: this.handle!.pid });
      await this.save();
      // The answer of a cold start leaves no earlier than response_delay after the boot began.
      const wait = startedAt + this.responseDelayMs - this.deps.now();
      if (wait > 0 && this.spec.mask === 'none') await new Promise((r) => setTimeout(r, wait));
    } catch (err) {
      await this.failBoot(err);
      throw err;
    }
  }

  private async failBoot(err: unknown): Promise<void> {
    const message = errorMessage(err);
    this.bootFailures++;
    this.lastError = message;
    this.deps.metrics.boots.labels({ service: this.spec.service, result: 'failed' }).inc();
    const details = typeof err === 'object' && err !== null && 'details' in err ? (err as { details: Record<string, unknown> }).details : {};
    this.log.error('boot failed', { code: errorCode(err) ?? 'UNKNOWN', cause: message, detail: details['logTail'] !== undefined ? String(details['logTail']) : undefined });
    if (ANSWER_AT_ONCE.has(this.spec.mask)) this.deps.masker.failed(this.maskTarget, message);
    const handle = this.handle;
    this.handle = undefined;
    this.suspended = false;
    if (handle) {
      // A half-started service must not linger: destroy whatever the backend got running.
      try {
        await this.deps.calls.stop(handle, this.spec, 'destroy', this.deps.stopTimeoutMs);
      } catch (stopErr) {
        this.log.warn('cleanup after failed boot failed', { cause: errorMessage(stopErr) });
      }
    }
    // Only now may a new query start the next attempt: the half-started one is gone.
    this.phase = 'stopped';
    await this.save();
  }

  /** Stop a ready service. Booting services are left alone; stopping twice shares one stop. */
  stop(mode: StopMode): Promise<void> {
    if (this.stopping) return this.stopping;
    if (this.phase !== 'ready' || !this.handle) return Promise.resolve();
    this.phase = 'stopping';
    const stopping: Promise<void> = this.runStop(mode).finally(() => {
      if (this.stopping === stopping) this.stopping = undefined;
    });
    this.stopping = stopping;
    return stopping;
  }

  private async runStop(mode: StopMode): Promise<void> {
    const handle = this.handle!;
    this.log.info('stopping', { mode });
    try {
      await this.deps.calls.stop(handle, this.spec, mode, this.deps.stopTimeoutMs);
    } catch (err) {
      this.log.error('stop failed', { mode, code: errorCode(err) ?? 'UNKNOWN', cause: errorMessage(err) });
      const state = await this.deps.calls.state(handle, this.spec).catch((): RuntimeState => 'unknown');
      if (state === 'running') {
        // Still up: keep serving it; the next sweep tries again.
        this.phase = 'ready';
        return;
      }
    }
    this.suspended = mode === 'suspend';
    if (!this.suspended) this.handle = undefined;
    this.phase = 'stopped';
    if (ANSWER_AT_ONCE.has(this.spec.mask)) this.deps.masker.stopped(this.maskTarget);
    this.deps.metrics.stops.labels({ service: this.spec.service, mode }).inc();
    await this.save();
  }

  /**
   * Daemon exit: destroy whatever runs, suspended ones and ones still booting included. A boot in
   * flight is not waited for (its ready() may take the whole boot timeout), only its start call.
   */
  async shutdown(): Promise<void> {
    this.closing = true;
    await this.starting;
    await this.stopping;
    const handle = this.handle;
    if (!handle) return;
    this.handle = undefined;
    this.suspended = false;
    this.phase = 'stopping';
    try {
      await this.deps.calls.stop(handle, this.spec, 'destroy', this.deps.stopTimeoutMs);
    } catch (err) {
      this.log.error('stop at shutdown failed', { code: errorCode(err) ?? 'UNKNOWN', cause: errorMessage(err) });
    }
    this.phase = 'stopped';
    await this.save();
  }

  /** Take over a service a previous daemon left running (state dir), without booting it again. */
  async adopt(entry: PersistedService): Promise<boolean> {
    const state = await this.deps.calls.state(entry.handle, this.spec).catch((): RuntimeState => 'unknown');
    this.bootCount = entry.bootCount;
    if (entry.lastBootMs !== undefined) this.lastBootMs = entry.lastBootMs;
    if (state === 'running' && !entry.suspended) {
      this.handle = entry.handle;
      this.phase = 'ready';
      this.lastActivity = this.deps.now();
      // Synjitsu starts out watching every masked IP as stopped: tell it this one is up, or it would answer for it.
      if (ANSWER_AT_ONCE.has(this.spec.mask)) await this.deps.masker.ready(this.maskTarget, entry.handle);
      this.log.info('adopted running service', { pid: entry.handle.pid });
      return true;
    }
    if (state === 'paused' || (state === 'running' && entry.suspended)) {
      this.handle = entry.handle;
      this.suspended = true;
      this.log.info('adopted suspended service', { pid: entry.handle.pid });
      return true;
    }
    if (state === 'unknown') {
      // We cannot tell whether it runs: destroy whatever is left rather than risk a second copy next to it.
      this.log.warn('state of a saved service is unknown; destroying it before a fresh boot', { pid: entry.handle.pid });
      await this.deps.calls.stop(entry.handle, this.spec, 'destroy', this.deps.stopTimeoutMs).catch((err: unknown) =>
        this.log.warn('could not destroy it', { cause: errorMessage(err) }),
      );
    }
    await this.deps.persist(undefined);
    return false;
  }

  status(): RuntimeStatus {
    return {
      service: this.spec.service,
      backend: this.spec.backend,
      ip: this.spec.network.ip,
      dns: this.dns,
      mask: this.spec.mask,
      state: this.phase,
      suspended: this.suspended,
      bootCount: this.bootCount,
      bootFailures: this.bootFailures,
      lastBootMs: this.lastBootMs === undefined ? null : Math.round(this.lastBootMs * 1000) / 1000,
      lastError: this.lastError ?? null,
      idleSeconds: this.phase === 'ready' ? Math.round((this.deps.now() - this.lastActivity) / 100) / 10 : null,
      pid: this.handle?.pid ?? null,
    };
  }

  private save(): Promise<void> {
    const entry: PersistedService | undefined = this.handle
      ? { spec: this.spec, handle: this.handle, suspended: this.suspended, bootCount: this.bootCount, ...(this.lastBootMs !== undefined ? { lastBootMs: this.lastBootMs } : {}) }
      : undefined;
    return this.deps.persist(entry).catch((err: unknown) => this.log.warn('could not persist state', { cause: errorMessage(err) }));
  }
}
