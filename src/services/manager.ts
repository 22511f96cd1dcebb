import type { Config, ServiceConfig } from '../config/types.js';
import type { ServiceAnswer, Summoner } from '../dns/types.js';
import { JitsuError, errorCode, errorMessage } from '../errors.js';
import { maskStrategy } from '../masking/registry.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import type { PersistedService, StateStore } from '../state/store.js';
import type { BootMasker } from '../synjitsu/masker.js';
import type { BackendCalls } from './calls.js';
import { serviceMetrics, type ServiceMetrics } from './metrics.js';
import { planServices, serviceFingerprint, type ServicePlan } from './reload-plan.js';
import { unlimitedBootGate, type BootGate } from './boot-gate.js';
import { PHASES, ServiceRuntime, type RuntimeDeps, type RuntimeStatus } from './runtime.js';
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

/**
 * What a reload does to the service network, called between stopping the removed and changed
 * services and installing the new ones: `specs` is the whole new set, `rebuild` the services whose
 * namespace must be made afresh (added or changed). In the daemon: ServiceNetworkSetup.update.
 */
export type NetworkUpdate = (specs: readonly ServiceSpec[], rebuild: ReadonlySet<string>) => Promise<void>;

/** One configured service: its runtime, and what it was made from (a reload compares fingerprints). */
interface Installed {
  runtime: ServiceRuntime;
  service: ServiceConfig;
  fingerprint: string;
  /** The runtime's deps object, kept so that a reload can change its live values (boot timeout). */
  deps: RuntimeDeps;
}

/** All services of one daemon: the DNS layer's Summoner, the idle reaper, adoption after restart, reloads. */
export class ServiceManager implements Summoner {
  private readonly installed = new Map<string, Installed>();
  // Replaced whole on a reload: the DNS answer cache hits only on the same answer object, so new
  // objects (new TTL, new names) make it miss by themselves.
  private answers = new Map<string, ServiceAnswer>();
  private zones = new Set<string>();
  private reaper: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly metrics: ServiceMetrics;
  private readonly bootGate: BootGate;

  constructor(
    private config: Config,
    private readonly deps: ManagerDeps,
  ) {
    this.now = deps.now ?? (() => performance.now());
    this.metrics = serviceMetrics(deps.metrics);
    this.bootGate = deps.bootGate ?? unlimitedBootGate(deps.metrics);
    config.services.forEach((service, i) => this.install(service, deps.specs[i]!));
    this.publishAnswers();
    const states = deps.metrics.gauge('jitsu_services', 'Services by lifecycle state');
    for (const phase of PHASES) {
      states.labels({ state: phase }).collect = () => this.runtimeList().filter((r) => r.phase === phase).length;
    }
  }

  private install(service: ServiceConfig, spec: ServiceSpec): void {
    const { deps } = this;
    const capabilities = deps.backend(spec.backend).capabilities;
    const watchExit = (handle: BackendHandle, onExit: () => void): Unwatch | undefined => {
      if (capabilities.exitWatch !== 'pid') return undefined;
      const target = watchedProcess(handle);
      return target ? deps.exitWatcher.watch(target, onExit) : undefined;
    };
    const runtimeDeps: RuntimeDeps = {
      calls: deps.calls,
      masker: deps.masker,
      logger: deps.logger,
      metrics: this.metrics,
      persist: (entry) => deps.store.set(service.name, entry),
      bootTimeoutMs: this.config.bootTimeout * 1000,
      stopTimeoutMs: 15_000,
      now: this.now,
      policy: service.policy,
      watchExit,
      ownsNetns: capabilities.netns,
      bootGate: this.bootGate,
    };
    const runtime = new ServiceRuntime(spec, service.dns, service.responseDelay * 1000, runtimeDeps, service.stopMode);
    this.installed.set(service.name, { runtime, service, fingerprint: serviceFingerprint(service, spec), deps: runtimeDeps });
  }

  /** Builds the answer table from the installed services and swaps it in at once. */
  private publishAnswers(): void {
    const answers = new Map<string, ServiceAnswer>();
    const zones = new Set<string>();
    for (const { runtime, service } of this.installed.values()) {
      for (const name of service.dns) {
        answers.set(name, {
          service: service.name,
          ipv4: service.family === 4 ? [service.ip] : [],
          ipv6: service.family === 6 ? [service.ip] : [],
          ttl: this.config.ttl,
          ensureUp: (source) => runtime.summon(source),
        });
        zones.add(name.slice(name.indexOf('.') + 1));
      }
    }
    this.answers = answers;
    this.zones = zones;
  }

  /**
   * Apply a reloaded configuration (`specs`: one per service of `next`, in order). Removed and
   * changed services are stopped first — a changed service must never run twice, old and new, on
   * one address — and until the new table is published their names get SERVFAIL rather than a
   * cacheable NXDOMAIN. Then the network follows, the new runtimes are installed, and the answer
   * table is swapped in one step. Unchanged services keep their runtime: same process, same
   * connections, same counters; live options (TTL, timeouts, stop mode, sweep) apply to them too.
   * The caller runs one reload at a time.
   */
  async reconfigure(next: Config, specs: readonly ServiceSpec[], updateNetwork: NetworkUpdate): Promise<ServicePlan> {
    const wanted = new Map(next.services.map((service, i) => [service.name, { service, spec: specs[i]!, fingerprint: serviceFingerprint(service, specs[i]!) }]));
    const plan = planServices(new Map([...this.installed].map(([name, entry]) => [name, entry.fingerprint])), new Map([...wanted].map(([name, w]) => [name, w.fingerprint])));
    const retiring = [...plan.removed, ...plan.changed];
    await Promise.all(
      retiring.map(async (name) => {
        this.deps.logger.info(plan.removed.includes(name) ? 'reload: stopping removed service' : 'reload: stopping changed service; the next query boots the new definition', { service: name });
        await this.installed.get(name)!.runtime.shutdown();
      }),
    );
    await updateNetwork(specs, new Set([...plan.added, ...plan.changed]));

    const sweepChanged = next.sweepInterval !== this.config.sweepInterval;
    this.config = next;
    const kept = new Map(this.installed);
    this.installed.clear();
    for (const [name, { service, spec }] of wanted) {
      const unchanged = plan.unchanged.includes(name) ? kept.get(name) : undefined;
      if (unchanged === undefined) {
        this.install(service, spec);
        this.installed.get(name)!.runtime.prepareAhead();
        continue;
      }
      unchanged.deps.bootTimeoutMs = next.bootTimeout * 1000;
      this.installed.set(name, unchanged);
    }
    this.publishAnswers();
    if (sweepChanged && this.reaper) this.startReaper();
    return plan;
  }

  private runtimeList(): ServiceRuntime[] {
    return [...this.installed.values()].map((entry) => entry.runtime);
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
    return this.installed.get(service)?.runtime;
  }

  /**
   * Summon-on-SYN (Synjitsu) and other non-DNS triggers; boot failures are logged by the runtime. A
   * service that refuses at once (failed, cool-down, boot refused by the gate) has the connections
   * Synjitsu took for it reset.
   */
  summon(service: string): void {
    const runtime = this.installed.get(service)?.runtime;
    const result = runtime?.summon();
    if (runtime === undefined || result === undefined || result === true) return;
    result.catch((err: unknown) => {
      const code = errorCode(err);
      if ((code === 'SERVICE_FAILED' || code === 'BOOT_REFUSED') && maskStrategy(runtime.spec.mask).onPacketPath) this.deps.masker.failed(runtime.maskTarget, errorMessage(err));
    });
  }

  /**
   * Adopt what a previous daemon left in the state dir: running services become ready without a
   * boot; services no longer configured are stopped, so nothing is orphaned.
   */
  async adopt(saved: Record<string, PersistedService>): Promise<void> {
    for (const [name, entry] of Object.entries(saved)) {
      const runtime = this.installed.get(name)?.runtime;
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
    for (const runtime of this.runtimeList()) runtime.prepareAhead();
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
    for (const runtime of this.runtimeList()) {
      void runtime.checkAlive();
      runtime.observeActivity();
    }
    const cutoff = this.now() - this.config.idleTimeout * 1000;
    for (const runtime of this.runtimeList()) {
      if (runtime.phase === 'ready' && runtime.lastActivity < cutoff) {
        this.deps.logger.info('idle, stopping', { service: runtime.spec.service, idle_s: ((this.now() - runtime.lastActivity) / 1000).toFixed(1) });
        runtime.stop(runtime.ownStopMode ?? this.config.stopMode).catch(() => undefined);
      }
    }
  }

  /** Clean daemon exit: stop everything we run (services stay only across a crash or kill). */
  async stopAll(): Promise<void> {
    this.stopReaper();
    await Promise.all(this.runtimeList().map((r) => r.shutdown()));
  }

  /** The configuration running now (a reload replaces it). */
  currentConfig(): Config {
    return this.config;
  }

  status(): RuntimeStatus[] {
    return this.runtimeList().map((r) => r.status());
  }

  private known(service: string): ServiceRuntime {
    const runtime = this.installed.get(service)?.runtime;
    if (runtime) return runtime;
    const names = [...this.installed.keys()].join(', ') || '(none)';
    throw new JitsuError('SERVICE_UNKNOWN', `no service named "${service}": the configured ones are ${names}`, { service });
  }

  /**
   * `jitsu start NAME`: boot a service as a query would (pre-warm) and resolve once it is ready;
   * rejects with the boot's failure. A masked boot answers queries at once, so it is watched to its end.
   */
  async startService(service: string): Promise<RuntimeStatus> {
    const runtime = this.known(service);
    const summoned = runtime.summon();
    if (summoned !== true) await summoned;
    const deadline = this.now() + this.config.bootTimeout * 1000 + 5_000;
    while (runtime.phase === 'booting' && this.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (runtime.phase !== 'ready') {
      throw new JitsuError('BOOT_FAILED', `service ${service} did not become ready (${runtime.phase}): ${runtime.lastError ?? 'no error recorded'}`, { service });
    }
    return runtime.status();
  }

  /** `jitsu stop NAME`: stop a ready service with the configured mode (a stopped one stays stopped). */
  async stopService(service: string): Promise<RuntimeStatus> {
    const runtime = this.known(service);
    if (runtime.phase === 'booting') throw new JitsuError('NOT_RUNNING', `service ${service} is booting: stop it once it is ready`, { service });
    await runtime.stop(runtime.ownStopMode ?? this.config.stopMode);
    return runtime.status();
  }
}
