import type { Config } from '../config/types.js';
import type { ServiceAnswer, Summoner } from '../dns/types.js';
import { errorCode, errorMessage } from '../errors.js';
import { SYNJITSU_MASKS } from './spec.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import type { PersistedService, StateStore } from '../state/store.js';
import type { BootMasker } from '../synjitsu/masker.js';
import type { BackendCalls } from './calls.js';
import { serviceMetrics } from './metrics.js';
import { unlimitedBootGate, type BootGate } from './boot-gate.js';
import { PHASES, ServiceRuntime, type RuntimeStatus } from './runtime.js';
import type { Backend, BackendHandle, BackendName, ServiceSpec } from '../backends/backend.js';
import { watchedProcess, type ExitWatcher, type Unwatch } from '../supervise/exit-watch.js';

export interface ManagerDeps {
  /** One spec per configured service, in config order (buildSpec); built once by the caller. */
  specs: readonly ServiceSpec[];
  calls: BackendCalls;
  masker: BootMasker;
  store: StateStore;
  logger: Logger;
  metrics: MetricsRegistry;
  /** Sees a pid-watched service's main process exit (pidfd); see src/supervise. */
  exitWatcher: ExitWatcher;
  /** Backend capabilities by name (the registry in the daemon, a fake in unit tests). */
  backend: (name: BackendName) => Backend;
  /** Admits every boot (--max-booting, --summon-rate); default: no limit. */
  bootGate?: BootGate;
  now?: () => number;
}

/** All services of one daemon: the DNS layer's Summoner, the idle reaper, adoption after restart. */
export class ServiceManager implements Summoner {
  private readonly runtimes = new Map<string, ServiceRuntime>();
  private readonly answers = new Map<string, ServiceAnswer>();
  private readonly zones = new Set<string>();
  private reaper: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly config: Config,
    private readonly deps: ManagerDeps,
  ) {
    this.now = deps.now ?? (() => performance.now());
    const metrics = serviceMetrics(deps.metrics);
    const bootGate = deps.bootGate ?? unlimitedBootGate(deps.metrics);
    config.services.forEach((service, i) => {
      const spec = deps.specs[i]!;
      const capabilities = deps.backend(spec.backend).capabilities;
      const watchExit = (handle: BackendHandle, onExit: () => void): Unwatch | undefined => {
        if (capabilities.exitWatch !== 'pid') return undefined;
        const target = watchedProcess(handle);
        return target ? deps.exitWatcher.watch(target, onExit) : undefined;
      };
      const runtime = new ServiceRuntime(spec, service.dns, service.responseDelay * 1000, {
        calls: deps.calls,
        masker: deps.masker,
        logger: deps.logger,
        metrics,
        persist: (entry) => deps.store.set(service.name, entry),
        bootTimeoutMs: config.bootTimeout * 1000,
        stopTimeoutMs: 15_000,
        now: this.now,
        policy: service.policy,
        watchExit,
        ownsNetns: capabilities.netns,
        bootGate,
      });
      this.runtimes.set(service.name, runtime);
      for (const name of service.dns) {
        this.answers.set(name, {
          service: service.name,
          ipv4: service.family === 4 ? [service.ip] : [],
          ipv6: service.family === 6 ? [service.ip] : [],
          ttl: config.ttl,
          ensureUp: (source) => runtime.summon(source),
        });
        this.zones.add(name.slice(name.indexOf('.') + 1));
      }
    });
    const states = deps.metrics.gauge('jitsu_services', 'Services by lifecycle state');
    for (const phase of PHASES) {
      states.labels({ state: phase }).collect = () => [...this.runtimes.values()].filter((r) => r.phase === phase).length;
    }
  }

  lookup(name: string): ServiceAnswer | undefined {
    return this.answers.get(name);
  }

  zoneOf(name: string): string | undefined {
    // Longest zone first: try the name itself, then each parent.
    let suffix = name;
    for (;;) {
      if (this.zones.has(suffix)) return suffix;
      const dot = suffix.indexOf('.');
      if (dot === -1) return undefined;
      suffix = suffix.slice(dot + 1);
    }
  }

  runtime(service: string): ServiceRuntime | undefined {
    return this.runtimes.get(service);
  }

  /**
   * Summon-on-SYN (Synjitsu) and other non-DNS triggers; boot failures are logged by the runtime. A
   * service that refuses at once (failed, cool-down, boot refused by the gate) has the connections
   * Synjitsu took for it reset.
   */
  summon(service: string): void {
    const runtime = this.runtimes.get(service);
    const result = runtime?.summon();
    if (runtime === undefined || result === undefined || result === true) return;
    result.catch((err: unknown) => {
      const code = errorCode(err);
      if ((code === 'SERVICE_FAILED' || code === 'BOOT_REFUSED') && SYNJITSU_MASKS.has(runtime.spec.mask)) this.deps.masker.failed(runtime.maskTarget, errorMessage(err));
    });
  }

  /**
   * Adopt what a previous daemon left in the state dir: running services become ready without a
   * boot; services no longer configured are stopped, so nothing is orphaned.
   */
  async adopt(saved: Record<string, PersistedService>): Promise<void> {
    for (const [name, entry] of Object.entries(saved)) {
      const runtime = this.runtimes.get(name);
      if (runtime) {
        await runtime.adopt(entry);
        continue;
      }
      this.deps.logger.info('stopping service no longer configured', { service: name, backend: entry.spec.backend });
      try {
        await this.deps.calls.stop(entry.handle, entry.spec, 'destroy', 15_000);
      } catch (err) {
        this.deps.logger.warn('could not stop orphaned service', { service: name, cause: errorMessage(err) });
      }
      await this.deps.store.set(name, undefined);
    }
  }

  startReaper(): void {
    this.stopReaper();
    this.reaper = setInterval(() => this.sweep(), this.config.sweepInterval * 1000);
    this.reaper.unref();
  }

  stopReaper(): void {
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = undefined;
  }

  /**
   * Every sweep: ask poll-watched backends whether their services still exist, account traffic and
   * open connections as activity (idle=traffic), and stop every ready service idle for the timeout.
   */
  sweep(): void {
    for (const runtime of this.runtimes.values()) {
      void runtime.checkAlive();
      runtime.observeActivity();
    }
    const cutoff = this.now() - this.config.idleTimeout * 1000;
    for (const runtime of this.runtimes.values()) {
      if (runtime.phase === 'ready' && runtime.lastActivity < cutoff) {
        this.deps.logger.info('idle, stopping', { service: runtime.spec.service, idle_s: ((this.now() - runtime.lastActivity) / 1000).toFixed(1) });
        runtime.stop(this.config.stopMode).catch(() => undefined);
      }
    }
  }

  /** Clean daemon exit: stop everything we run (services stay only across a crash or kill). */
  async stopAll(): Promise<void> {
    this.stopReaper();
    await Promise.all([...this.runtimes.values()].map((r) => r.shutdown()));
  }

  status(): RuntimeStatus[] {
    return [...this.runtimes.values()].map((r) => r.status());
  }
}
