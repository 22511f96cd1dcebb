import { stopKeepsHandle, type BackendHandle, type ExitReport, type MaskMode, type RuntimeState, type ServiceSpec, type StopMode } from '../backends/backend.js';
import { JitsuError, errorCode, errorMessage } from '../errors.js';
import { sampleActivity, wasActive, type ActivitySample } from '../supervise/activity.js';
import type { Unwatch } from '../supervise/exit-watch.js';
import { StartLimiter, type Ending, type SupervisionPolicy } from '../supervise/policy.js';
import type { Logger } from '../observe/log.js';
import type { PersistedService } from '../state/store.js';
import type { BootMasker, MaskTarget } from '../synjitsu/masker.js';
import type { BackendCalls } from './calls.js';
import type { BootGate } from './boot-gate.js';
import type { QuerySource } from '../dns/source.js';
import { epochNow } from '../pool/protocol.js';
import type { ServiceMetrics } from './metrics.js';
import { maskTargetOf } from './spec.js';
import { maskStrategy, type MaskStrategy } from '../masking/registry.js';

/** `failed`: in a crash-loop cool-down; queries get SERVFAIL at once until it ends. */
export type Phase = 'stopped' | 'booting' | 'ready' | 'stopping' | 'failed';
export const PHASES: readonly Phase[] = ['stopped', 'booting', 'ready', 'stopping', 'failed'];

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
  policy: SupervisionPolicy;
  /**
   * Watch the service's main process from now on; `onExit` runs when it is gone. Undefined when
   * this backend's services are only seen gone by polling `state()` (checkAlive, every sweep).
   */
  watchExit: (handle: BackendHandle, onExit: () => void) => Unwatch | undefined;
  /** The service lives in its own netns with its pid inside: its open connections can be counted. */
  ownsNetns: boolean;
  /** Admits (or refuses) every boot: --max-booting, --summon-rate. */
  bootGate: BootGate;
}


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
  /**
   * The pid of what the backend holds ahead while stopped (Backend.prepare: a created container, a
   * pre-spawned QEMU), as the backend reported it when it made it. Not re-checked here: the next
   * start checks it still waits (alive, same start time, same template) before taking it over.
   */
  standbyPid: number | null;
  restart: SupervisionPolicy['restart'];
  /** Unplanned ends after ready (crashes, exits), since the daemon started. */
  exits: number;
  lastExit: string | null;
  /** ISO time the crash-loop cool-down ends (state `failed`). */
  failedUntil: string | null;
}

/**
 * One service's lifecycle: stopped -> booting -> ready -> stopping -> stopped (and `failed` during a
 * crash-loop cool-down). A boot is single-flight: however many queries race, they share one boot
 * promise. A failed boot returns the service to stopped (so the next query retries), resets masked
 * connections, and carries its cause to every waiter. Nothing here is assumed: `ready` is what the
 * backend observed, and a ready service whose process dies (or whose domain vanishes) is seen,
 * logged with its cause, cleaned up and moved to stopped; the restart policy says what follows.
 */
export class ServiceRuntime {
  phase: Phase = 'stopped';
  handle: BackendHandle | undefined;
  suspended = false;
  bootCount = 0;
  bootFailures = 0;
  exits = 0;
  lastBootMs: number | undefined;
  lastError: string | undefined;
  lastExit: string | undefined;
  /** Time of the last query, SYN or observed traffic for this service, from deps.now(). */
  lastActivity = 0;
  private boot: Promise<void> | undefined;
  /** The backend start call of the boot in flight: short, and its handle must never escape a shutdown. */
  private starting: Promise<unknown> | undefined;
  private stopping: Promise<void> | undefined;
  /**
   * What the backend holds ahead for the next start while the service is stopped (Backend.prepare,
   * e.g. a created container), and the prepare call in flight: at most one of each.
   */
  private standby: BackendHandle | undefined;
  private preparing: Promise<void> | undefined;
  private closing = false;
  private unwatch: Unwatch | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private lastSample: ActivitySample | undefined;
  private readonly limiter: StartLimiter;
  private readonly log: Logger;
  private readonly mask: MaskStrategy;

  constructor(
    readonly spec: ServiceSpec,
    readonly dns: readonly string[],
    private readonly responseDelayMs: number,
    private readonly deps: RuntimeDeps,
    /** The service's own stop= (idle stops and `jitsu stop`); undefined: the daemon's -m, as it is now. */
    readonly ownStopMode?: StopMode,
  ) {
    this.log = deps.logger.child({ service: spec.service });
    this.limiter = new StartLimiter(deps.policy);
    this.mask = maskStrategy(spec.mask);
  }

  get maskTarget(): MaskTarget {
    return maskTargetOf(this.spec);
  }

  /**
   * Make sure the service is up. `true`: answer now (ready, or booting behind park/handshake masking).
   * Otherwise a promise that resolves when an answer may go out and rejects if the boot fails.
   */
  summon(source?: QuerySource): true | Promise<void> {
    this.lastActivity = this.deps.now();
    if (this.phase === 'ready') return true;
    // A SYN can still arrive while the daemon stops its services: never start a boot then.
    if (this.closing) return Promise.reject(new JitsuError('ABORTED', `${this.spec.service}: the daemon is shutting down`));
    if (this.phase === 'failed') {
      const until = this.limiter.coolingDownUntil(this.deps.now());
      if (until !== undefined) return Promise.reject(this.coolingDownError(until));
      this.phase = 'stopped';
    }
    if (this.phase === 'booting') return this.mask.answersBeforeReady ? true : this.boot!;
    const boot = this.deps.bootGate.start(this.spec.service, source, () => this.startBoot(epochNow()));
    if (boot instanceof JitsuError) return Promise.reject(boot);
    if (this.mask.answersBeforeReady) {
      // Queries answered at once never see this promise: keep its rejection from going unhandled.
      boot.catch(() => undefined);
      return true;
    }
    return boot;
  }

  private coolingDownError(until: number): JitsuError {
    const inS = Math.max(0, Math.ceil((until - this.deps.now()) / 1000));
    return new JitsuError('SERVICE_FAILED', `service ${this.spec.service} is failed (crash loop) for ${inS} s more; last error: ${this.lastError ?? 'unknown'}`, {
      service: this.spec.service,
      retryInSeconds: inS,
    });
  }

  /** `summonedAt`: epoch ms (epochNow), comparable with the worker's time of the backend call. */
  private startBoot(summonedAt: number): Promise<void> {
    this.cancelRestart();
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
    let readyAt = epochNow();
    const observeReady = (settledAt: number): void => {
      readyAt = settledAt;
    };
    // What now runs is persisted while ready() still waits (the store writes in order, this before
    // the record of the boot's end). `starting` settles once it is known (shutdown waits for that,
    // not for the whole boot) or the call ended without one.
    let known!: () => void;
    this.starting = new Promise<void>((resolve) => (known = resolve));
    const started = (value: BackendHandle): void => {
      const { notes, ...handle } = value;
      // How the start went, in the backend's words (e.g. restored from a snapshot, or why not).
      for (const note of notes ?? []) this.log.info(note, { backend: this.spec.backend });
      this.handle = handle;
      this.suspended = false;
      void this.save();
      known();
    };
    // Dispatch the backend call first: the bookkeeping below then overlaps the worker's wake-up
    // instead of delaying the boot (a log line is a synchronous write).
    // (an async wrapper so that even a synchronous throw lands in the failure path below)
    const booting = (async () => {
      if (!resuming) {
        // A prepare in flight is the first half of this start: wait for it, then start what it made.
        // (Only then: an await yields, and the log line below would go before the dispatch.)
        if (this.preparing) await this.preparing;
        // start() takes over what was held, or removes it: either way it is no longer a standby.
        this.standby = undefined;
      }
      // start() (or resume()) and ready() in one call: one hop to a worker thread and back per boot.
      const hooks = { onCalled: observeStart, onStarted: started, onSettled: observeReady };
      await calls.boot(this.spec, remaining(), hooks, resuming ? this.handle : undefined);
    })().finally(() => known());
    this.log.info(resuming ? 'resuming' : 'booting', { backend: this.spec.backend, ip: this.spec.network.ip, mask: this.spec.mask });
    if (this.mask.onPacketPath) masker.booting(this.maskTarget);
    try {
      await booting;
      if (this.closing) throw new JitsuError('ABORTED', `${this.spec.service}: the daemon is shutting down`);
      if (this.mask.onPacketPath) {
        await masker.ready(this.maskTarget, this.handle!);
        metrics.orchestration.labels({ step: 'ready_to_handover' }).observe((epochNow() - readyAt) / 1000);
      }
      this.phase = 'ready';
      // The idle clock starts when the answers go out: a boot longer than the idle timeout (a VM on a
      // slow host) would otherwise be stopped at the next sweep, before its clients could connect.
      this.lastActivity = this.deps.now();
      // The exit watch (a pidfd and a /proc look: ~0.2 ms of a cold path) starts once the answers
      // are out. It checks the start time after opening, so an exit in between is seen all the same.
      const handle = this.handle!;
      setImmediate(() => {
        if (this.handle === handle && this.phase === 'ready' && !this.closing) this.watch(handle);
      });
      const bootMs = this.deps.now() - startedAt;
      this.lastBootMs = bootMs;
      this.lastError = undefined;
      this.lastSample = undefined;
      metrics.boots.labels({ service: this.spec.service, result: 'ok' }).inc();
      metrics.bootSeconds.labels({ backend: this.spec.backend }).observe(bootMs / 1000);
      // The record of the boot's time joins the store's next write (which starts after the answers
      // go out); the log line, a synchronous write, comes after them too.
      void this.save();
      setImmediate(() => this.log.info('ready', { boot_ms: bootMs.toFixed(1), pid: handle.pid }));
      // The answer of a cold start leaves no earlier than response_delay after the boot began.
      const wait = startedAt + this.responseDelayMs - this.deps.now();
      if (wait > 0 && this.mask.delaysAnswer) await new Promise((r) => setTimeout(r, wait));
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
    const tail = details['logTail'];
    this.log.error('boot failed', { code: errorCode(err) ?? 'UNKNOWN', cause: message, detail: Array.isArray(tail) ? tail.join(' | ') : tail !== undefined ? String(tail) : undefined });
    if (this.mask.onPacketPath) this.deps.masker.failed(this.maskTarget, message);
    this.stopWatching();
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
    if (!this.closing && errorCode(err) !== 'ABORTED') this.ended({ kind: 'boot-failed' });
  }

  private watch(handle: BackendHandle): void {
    this.stopWatching();
    this.unwatch = this.deps.watchExit(handle, () => this.exited(handle));
  }

  private stopWatching(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /**
   * Poll-watched backends (and a second look for any other): ask the backend whether a ready or
   * suspended service still exists. Called by the manager on every sweep.
   */
  async checkAlive(): Promise<void> {
    const handle = this.handle;
    if (!handle || (this.phase !== 'ready' && !(this.phase === 'stopped' && this.suspended))) return;
    const state = await this.deps.calls.state(handle, this.spec).catch((): RuntimeState => 'unknown');
    if (state === 'stopped' && this.handle === handle) this.exited(handle);
  }

  /** The service ended on its own (or was killed behind our back): log, count, clean up, apply the policy. */
  private exited(handle: BackendHandle): void {
    if (this.closing || this.handle !== handle) return;
    const wasSuspended = this.phase === 'stopped' && this.suspended;
    if (this.phase !== 'ready' && !wasSuspended) return; // a planned stop or a boot in flight sees it itself
    this.stopWatching();
    this.phase = 'stopping';
    const cleanup = this.cleanUpAfterExit(handle).finally(() => {
      if (this.stopping === cleanup) this.stopping = undefined;
    });
    this.stopping = cleanup;
  }

  private async cleanUpAfterExit(handle: BackendHandle): Promise<void> {
    const { calls, metrics } = this.deps;
    // Connections Synjitsu still holds or relays for it are reset now, not when they time out.
    if (this.mask.onPacketPath) this.deps.masker.stopped(this.maskTarget);
    const report = await calls.exitReport(handle, this.spec).catch(
      (err: unknown): ExitReport => ({ reason: 'vanished', cause: `gone (no exit report: ${errorMessage(err)})`, logTail: [] }),
    );
    this.exits++;
    this.lastExit = report.cause;
    this.lastError = `exited after ready: ${report.cause}`;
    metrics.exits.labels({ service: this.spec.service, reason: report.reason }).inc();
    this.log.error('service exited', { reason: report.reason, cause: report.cause, pid: handle.pid, detail: report.logTail.slice(-5).join(' | ') || undefined });
    try {
      // What it leaves behind (tap, link up, container state) goes the way of a destroy.
      await calls.stop(handle, this.spec, 'destroy', this.deps.stopTimeoutMs);
    } catch (err) {
      this.log.warn('cleanup after exit failed', { cause: errorMessage(err) });
    }
    if (this.handle === handle) this.handle = undefined;
    this.suspended = false;
    this.settleStopped();
    await this.save();
    this.prepareAhead();
    this.ended({ kind: 'exited', reason: report.reason });
  }

  /**
   * The end of a stop or a cleanup. A query that came meanwhile has already chained the next boot
   * on it (startBoot): the service is `booting` then, and must stay so, or the next query would
   * start a second boot beside it.
   */
  private settleStopped(): void {
    if (this.phase !== 'booting') this.phase = 'stopped';
  }

  /** After an unplanned end: wait for the next query, restart (with backoff), or cool down. */
  private ended(ending: Ending): void {
    if (this.closing) return;
    const verdict = this.limiter.record(ending, this.deps.now());
    // A query already started the next boot; the end still counts towards the start limit.
    if (this.phase === 'booting') return;
    const { policy } = this.deps;
    if (verdict.action === 'cool-down') {
      this.phase = 'failed';
      const until = new Date(Date.now() + (verdict.untilMs - this.deps.now()));
      this.log.error('crash loop: failed, queries get SERVFAIL until the cool-down ends', {
        failures: verdict.failures,
        within_s: policy.startLimitIntervalMs / 1000,
        until: until.toISOString(),
        last_error: this.lastError,
      });
      this.deps.metrics.crashLoops.labels({ service: this.spec.service }).inc();
      // A service meant to run comes back by itself once the cool-down is over.
      if (policy.restart !== 'no') this.scheduleRestart(verdict.untilMs - this.deps.now());
      return;
    }
    if (verdict.action === 'restart') this.scheduleRestart(verdict.delayMs);
  }

  private scheduleRestart(delayMs: number): void {
    this.cancelRestart();
    this.log.info('restarting', { policy: this.deps.policy.restart, in_ms: Math.round(delayMs) });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closing || (this.phase !== 'stopped' && this.phase !== 'failed')) return;
      this.deps.metrics.restarts.labels({ service: this.spec.service }).inc();
      const boot = this.summon();
      if (boot !== true) boot.catch(() => undefined);
    }, Math.max(0, delayMs));
    this.restartTimer.unref();
  }

  private cancelRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
  }

  /**
   * Idle accounting for the sweep (`idle=traffic`): traffic on the service's link or a connection
   * open in its netns since the last sample counts as activity, like a query does.
   */
  observeActivity(): void {
    if (this.phase !== 'ready' || !this.handle || this.deps.policy.idle !== 'traffic') return;
    const sample = sampleActivity(this.handle, this.deps.ownsNetns);
    if (wasActive(this.lastSample, sample)) this.lastActivity = this.deps.now();
    this.lastSample = sample;
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
    // A planned stop: its exit is ours, not a crash. (A suspended process keeps its watch; a
    // hibernated one has no process.)
    if (mode !== 'suspend') this.stopWatching();
    this.log.info('stopping', { mode });
    // Writing the guest's memory out is as long a job as a boot (an xl save under TCG: tens of seconds).
    const deadlineMs = mode === 'hibernate' ? Math.max(this.deps.stopTimeoutMs, this.deps.bootTimeoutMs) : this.deps.stopTimeoutMs;
    try {
      await this.deps.calls.stop(handle, this.spec, mode, deadlineMs);
    } catch (err) {
      this.log.error('stop failed', { mode, code: errorCode(err) ?? 'UNKNOWN', cause: errorMessage(err) });
      const state = await this.deps.calls.state(handle, this.spec).catch((): RuntimeState => 'unknown');
      if (state === 'running') {
        // Still up: keep serving it, and try again after another idle period rather than at every
        // sweep (a save that failed for a full disk would otherwise be re-run back to back).
        this.phase = 'ready';
        this.lastActivity = this.deps.now();
        this.watch(handle);
        return;
      }
      this.stopWatching();
    }
    this.suspended = stopKeepsHandle(mode);
    if (!this.suspended) this.handle = undefined;
    this.settleStopped();
    if (this.mask.onPacketPath) this.deps.masker.stopped(this.maskTarget);
    this.deps.metrics.stops.labels({ service: this.spec.service, mode }).inc();
    await this.save();
    if (!this.suspended) this.prepareAhead();
  }

  /**
   * Has the backend get the next start ready while the service is stopped (Backend.prepare), off
   * the DNS path: after a stop or an exit, after adoption, and when a reload installs the service.
   * One call at a time; a boot waits for the one in flight and then starts what it prepared.
   */
  prepareAhead(): void {
    const { calls } = this.deps;
    if (!calls.prepare || this.closing || this.preparing || this.phase !== 'stopped' || this.handle) return;
    const preparing: Promise<void> = (async () => {
      try {
        const before = this.standby;
        // Preparing may be a boot of its own (a warm copy restored, a command run until it serves).
        this.standby = await calls.prepare!(this.spec, Math.max(this.deps.stopTimeoutMs, this.deps.bootTimeoutMs));
        if (before !== undefined || this.standby !== undefined) await this.save();
      } catch (err) {
        this.log.warn('could not prepare the next start ahead', { code: errorCode(err) ?? 'UNKNOWN', cause: errorMessage(err) });
      }
    })().finally(() => {
      if (this.preparing === preparing) this.preparing = undefined;
    });
    this.preparing = preparing;
  }

  /** Destroys what the backend holds ahead (shutdown, reload): nothing prepared may outlive the service. */
  private async dropStandby(): Promise<void> {
    const standby = this.standby;
    if (!standby) return;
    this.standby = undefined;
    try {
      await this.deps.calls.stop(standby, this.spec, 'destroy', this.deps.stopTimeoutMs);
    } catch (err) {
      this.log.error('could not remove what was prepared ahead', { code: errorCode(err) ?? 'UNKNOWN', cause: errorMessage(err) });
    }
    await this.save();
  }

  /**
   * Daemon exit: destroy whatever runs, suspended ones and ones still booting included. A boot in
   * flight is not waited for (its ready() may take the whole boot timeout), only its start call.
   */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.cancelRestart();
    this.stopWatching();
    await this.starting;
    await this.stopping;
    await this.preparing;
    await this.dropStandby();
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
    if (entry.standby) {
      // Not a service that runs: what the last daemon prepared. prepareAhead() lets the backend keep it or replace it.
      this.bootCount = entry.bootCount;
      if (entry.lastBootMs !== undefined) this.lastBootMs = entry.lastBootMs;
      this.standby = entry.handle;
      return false;
    }
    const state = await this.deps.calls.state(entry.handle, this.spec).catch((): RuntimeState => 'unknown');
    this.bootCount = entry.bootCount;
    if (entry.lastBootMs !== undefined) this.lastBootMs = entry.lastBootMs;
    if (state === 'running' && !entry.suspended) {
      this.handle = entry.handle;
      this.phase = 'ready';
      this.lastActivity = this.deps.now();
      // Synjitsu starts out watching every masked IP as stopped: tell it this one is up, or it would answer for it.
      if (this.mask.onPacketPath) await this.deps.masker.ready(this.maskTarget, entry.handle);
      this.watch(entry.handle);
      this.log.info('adopted running service', { pid: entry.handle.pid });
      return true;
    }
    if (state === 'paused' || (state === 'running' && entry.suspended)) {
      this.handle = entry.handle;
      this.suspended = true;
      this.watch(entry.handle);
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
    const until = this.phase === 'failed' ? this.limiter.coolingDownUntil(this.deps.now()) : undefined;
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
      standbyPid: this.standby?.pid ?? null,
      restart: this.deps.policy.restart,
      exits: this.exits,
      lastExit: this.lastExit ?? null,
      failedUntil: until === undefined ? null : new Date(Date.now() + (until - this.deps.now())).toISOString(),
    };
  }

  private save(): Promise<void> {
    const last = this.lastBootMs !== undefined ? { lastBootMs: this.lastBootMs } : {};
    const entry: PersistedService | undefined = this.handle
      ? { spec: this.spec, handle: this.handle, suspended: this.suspended, bootCount: this.bootCount, ...last }
      : this.standby
        ? { spec: this.spec, handle: this.standby, standby: true, suspended: false, bootCount: this.bootCount, ...last }
        : undefined;
    return this.deps.persist(entry).catch((err: unknown) => this.log.warn('could not persist state', { cause: errorMessage(err) }));
  }
}
