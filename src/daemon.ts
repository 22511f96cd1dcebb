/**
 * The composition root: turns a validated Config into a running daemon (network, worker pool,
 * Synjitsu, services, DNS, observability) and tears it down again in reverse order. It lives outside
 * src/cli so that tests and benchmarks start a daemon in-process exactly as the CLI does.
 */
import { mkdir } from 'node:fs/promises';
import type { BootMasker } from './synjitsu/masker.js';
import { noMasker } from './synjitsu/masker.js';
import type { Config } from './config/types.js';
import { reloadOptions } from './config/reload.js';
import { listenControl } from './control/server.js';
import type { ReloadReport } from './control/protocol.js';
import { createDnsHandler, type QueryHandler } from './dns/handler.js';
import { ResponseRateLimiter } from './dns/rrl.js';
import { AddressSet } from './dns/source.js';
import { BootGate } from './services/boot-gate.js';
import { ensurePrivateDir } from './state/private-dir.js';
import { createDnsServer, type DnsServer } from './dns/server.js';
import { createForwarder, withoutSelf, type Forwarder, type Upstream } from './dns/forwarder.js';
import { errorCode, errorMessage } from './errors.js';
import { storeUsage } from './backends/common/snapshot-store.js';
import { startObserveServer, type ObserveServer } from './observe/http.js';
import type { LogLevel, Logger } from './observe/log.js';
import { noNotifier, serviceSummary, type Notifier } from './observe/notify.js';
import { MetricsRegistry } from './observe/metrics.js';
import { BackendPool, LOAD_WAIT_MS } from './pool/pool.js';
import { ServiceManager } from './services/manager.js';
import { buildSpec, packetPathTargets } from './services/spec.js';
import { StateStore } from './state/store.js';
import { ServiceNetworkSetup } from './services/network.js';
import { createExitWatcher } from './supervise/exit-watch.js';
import { getBackend } from './backends/registry.js';

export interface Daemon {
  /** The running configuration (after a reload, the reloaded one). */
  readonly config: Config;
  readonly manager: ServiceManager;
  readonly metrics: MetricsRegistry;
  /** Where DNS listens (port resolved when the config asked for port 0). */
  dnsAddresses(): { family: 4 | 6; address: string; port: number }[];
  metricsPort(): number | undefined;
  status(): DaemonStatus;
  /**
   * Re-read the configuration (StartOptions.loadConfig) and apply it: see docs/ARCHITECTURE.md
   * "Reload". A configuration that does not validate is refused (ok: false) and the running one
   * keeps serving.
   */
  reload(): Promise<ReloadReport>;
  stop(): Promise<void>;
}

export interface DaemonStatus {
  version: string;
  uptimeSeconds: number;
  dns: { address: string; port: number }[];
  forwarders: string[];
  services: ReturnType<ServiceManager['status']>;
  /** The snapshot dir as the filesystem has it: templates and hibernated guests, per service. */
  snapshots: { dir: string; maxBytes: number; usedBytes: number; byService: Record<string, number> };
}

export const VERSION = '0.1.0';

/** Upstreams, the forwarder and the handler built from them: what a reload replaces on the DNS side. */
interface Resolver {
  upstreams: Upstream[];
  forwarder: Forwarder | undefined;
  handler: QueryHandler;
}

function upstreamText(upstreams: readonly Upstream[]): string {
  return upstreams.map((u) => `${u.address}:${u.port}`).join(',');
}

async function createMasker(config: Config, manager: () => ServiceManager, logger: Logger, metrics: MetricsRegistry): Promise<BootMasker> {
  if (config.synjitsu === undefined) return noMasker;
  const { createSynjitsu } = await import('./synjitsu/index.js');
  return createSynjitsu({
    iface: config.synjitsu,
    logger: logger.child({ component: 'synjitsu' }),
    metrics,
    relay: config.synjitsuRelay,
    onSummon: (service) => manager().summon(service),
  });
}

export interface StartOptions {
  /** Aborted while start-up is under way (a signal, a fault): start undoes what it made and rejects. */
  signal?: AbortSignal;
  /** Reads and validates the configuration again, as at start-up (throws ConfigError); for reloads. */
  loadConfig?: () => Config;
  /** Applies a reloaded --log-level to the logger. */
  setLogLevel?: (level: LogLevel) => void;
  /** systemd: readiness, status, reloads, stopping (default: none). */
  notifier?: Notifier;
}

export async function startDaemon(config: Config, logger: Logger, opts: StartOptions = {}): Promise<Daemon> {
  const startedAt = Date.now();
  const metrics = new MetricsRegistry();
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (err) {
        logger.warn('shutdown step failed', { cause: errorMessage(err) });
      }
    }
  };
  const notifier = opts.notifier ?? noNotifier;
  let running = config;
  try {
    await ensurePrivateDir(config.stateDir, '--state');
    // Bound before anything else is touched: a second daemon on this state dir stops here. A socket
    // that cannot be made (a path too long for sun_path) costs the control commands, not the DNS.
    const control = await listenControl(config.stateDir, logger).catch((err: unknown) => {
      if (errorCode(err) !== 'CONTROL_FAILED') throw err;
      logger.warn('no control socket: jitsu status/start/stop/reload will not reach this daemon (SIGHUP still reloads)', { cause: errorMessage(err) });
      return undefined;
    });
    if (control) cleanups.push(() => control.close());
    const store = new StateStore(config.stateDir);
    const saved = await store.load();
    const specs = config.services.map((s) => buildSpec(s, config));
    await Promise.all(specs.map((s) => mkdir(s.runDir, { recursive: true, mode: 0o700 })));

    const network = new ServiceNetworkSetup(config, logger);
    // Registered first: teardown undoes exactly what prepare got to, should it fail half-way.
    cleanups.push(() => network.teardown());
    // Services in the saved state are adopted, so their namespaces are kept; any other namespace
    // of ours is a dead daemon's leftover and is replaced.
    await network.prepare(specs, new Set(Object.keys(saved)));
    opts.signal?.throwIfAborted();

    // All workers start now: a thread spawned on demand would load its modules inside some boot.
    const pool = new BackendPool({ minThreads: config.workers, maxThreads: config.workers, logger });
    cleanups.push(() => pool.close());

    let manager: ServiceManager | undefined;
    const masker = await createMasker(config, () => manager!, logger, metrics);
    cleanups.push(() => masker.close());
    masker.configure(packetPathTargets(specs));

    const bootGate = new BootGate({ maxBooting: config.maxBooting, summonRate: config.summonRate, metrics });
    manager = new ServiceManager(config, { specs, calls: pool, masker, store, logger, metrics, exitWatcher: createExitWatcher(logger), backend: getBackend, bootGate });
    const mgr = manager;
    await mgr.adopt(saved);
    // adopt() stopped what a previous daemon ran for services no longer configured; their netns go too.
    await network.removeLeftovers(Object.keys(saved).filter((name) => !specs.some((s) => s.service === name)));
    mgr.startReaper();
    cleanups.push(async () => {
      await mgr.stopAll();
      await store.flush();
    });

    // The DNS side a reload rebuilds (upstreams, TTL, --allow-forward, RRL): the server keeps one
    // handler that delegates to the current resolver.
    const makeResolver = (cfg: Config, previous?: Resolver): Resolver => {
      // An upstream that is this daemon itself (resolv.conf naming 127.0.0.1 while we serve :53) would
      // loop every forwarded query back to us; drop it and say so.
      const configured = cfg.forwarders.map((address) => ({ address, port: cfg.forwarderPort }));
      const upstreams = withoutSelf(configured, cfg.bind.map((address) => ({ address, port: cfg.port })));
      if (upstreams.length < configured.length) logger.warn('ignoring upstreams that are this daemon itself', { dropped: configured.length - upstreams.length });
      const sameUpstreams = previous !== undefined && upstreamText(previous.upstreams) === upstreamText(upstreams);
      const forwarder = sameUpstreams ? previous.forwarder : upstreams.length > 0 ? createForwarder({ upstreams, metrics, logger }) : undefined;
      const handler = createDnsHandler({
        summoner: mgr,
        forwarder,
        metrics,
        logger,
        ttl: cfg.ttl,
        allowForward: new AddressSet(cfg.allowForward),
        rrl: cfg.rrlRate > 0 ? new ResponseRateLimiter({ rate: cfg.rrlRate, slip: cfg.rrlSlip }) : undefined,
      });
      return { upstreams, forwarder, handler };
    };
    let resolver = makeResolver(config);
    cleanups.push(async () => resolver.forwarder?.close());
    const dns: DnsServer = await createDnsServer({
      addresses: config.bind,
      port: config.port,
      handler: { handle: (message, transport, source) => resolver.handler.handle(message, transport, source) },
      logger,
      metrics,
    });
    cleanups.push(() => dns.close());

    // Read from the filesystem on every scrape or sweep: what is there, not what we think we wrote.
    const snapshotBytes = metrics.gauge('jitsu_snapshot_bytes', 'bytes the snapshot dir holds per service (templates, hibernated guests)');
    const snapshotUsage = (): DaemonStatus['snapshots'] => {
      const cfg = mgr.currentConfig();
      const usage = storeUsage(cfg.snapshotDir);
      for (const [service, bytes] of Object.entries(usage.bySubdir)) snapshotBytes.labels({ service }).set(bytes);
      return { dir: cfg.snapshotDir, maxBytes: cfg.snapshotMaxMiB * 1024 * 1024, usedBytes: usage.total, byService: usage.bySubdir };
    };
    const snapshotTimer = setInterval(snapshotUsage, config.sweepInterval * 1000);
    snapshotTimer.unref();
    cleanups.push(async () => clearInterval(snapshotTimer));
    const status = (): DaemonStatus => ({
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      dns: [...new Map(dns.addresses().map((a) => [`${a.address}:${a.port}`, { address: a.address, port: a.port }])).values()],
      forwarders: resolver.upstreams.map((u) => `${u.address}:${u.port}`),
      services: mgr.status(),
      snapshots: snapshotUsage(),
    });

    let observe: ObserveServer | undefined;
    if (config.metrics) {
      observe = await startObserveServer(config.metrics.host, config.metrics.port, metrics, status);
      const obs = observe;
      cleanups.push(() => obs.close());
    }

    // Ready means a boot no longer waits for a worker to load its modules.
    if (!(await pool.loaded(LOAD_WAIT_MS))) logger.warn('backend workers still loading: the first boots wait for them', { wait_ms: LOAD_WAIT_MS });
    opts.signal?.throwIfAborted();
    logger.info('jitsu ready', {
      dns: [...new Set(dns.addresses().map((a) => `${a.family === 6 ? `[${a.address}]` : a.address}:${a.port}`))].join(','),
      services: config.services.length,
      forwarders: upstreamText(resolver.upstreams) || 'off',
      synjitsu: config.synjitsu ?? 'off',
      metrics: observe ? `${config.metrics!.host}:${observe.port}` : 'off',
    });


    const applyReload = async (): Promise<ReloadReport> => {
      notifier.reloading();
      try {
        let next: Config;
        try {
          if (!opts.loadConfig) throw new Error('this daemon was started without a configuration to re-read');
          next = opts.loadConfig();
        } catch (err) {
          if (errorCode(err) !== 'CONFIG_INVALID') throw err;
          logger.error('reload refused: the running configuration keeps serving', { error: errorMessage(err) });
          return { ok: false, error: errorMessage(err) };
        }
        const { effective, kept, changed } = reloadOptions(running, next);
        for (const k of kept) logger.warn('reload: option needs a restart to change; keeping its running value', { option: k.option, running: k.running, wanted: k.wanted });
        const specs = effective.services.map((s) => buildSpec(s, effective));
        await Promise.all(specs.map((s) => mkdir(s.runDir, { recursive: true, mode: 0o700 })));
        const plan = await mgr.reconfigure(effective, specs, (all, rebuild) => network.update(all, rebuild));
        masker.configure(packetPathTargets(specs));
        const previous = resolver;
        resolver = makeResolver(effective, previous);
        if (previous.forwarder !== undefined && previous.forwarder !== resolver.forwarder) {
          // Queries already sent upstream finish on the old one (2 s per attempt, one retry).
          const old = previous.forwarder;
          setTimeout(() => void old.close(), 10_000).unref();
        }
        opts.setLogLevel?.(effective.logLevel);
        running = effective;
        logger.info('reloaded', {
          added: plan.added.join(',') || undefined,
          removed: plan.removed.join(',') || undefined,
          changed: plan.changed.join(',') || undefined,
          unchanged: plan.unchanged.length,
          options: changed.join(',') || undefined,
        });
        return { ok: true, ...plan, kept, options: changed };
      } catch (err) {
        logger.error('reload failed part-way; services left as they are now', { code: errorCode(err) ?? 'UNKNOWN', cause: errorMessage(err) });
        return { ok: false, error: errorMessage(err) };
      } finally {
        notifier.ready();
      }
    };

    // One reload at a time: a SIGHUP during a reload waits for it, then reads the file again.
    let reloads: Promise<unknown> = Promise.resolve();
    const reload = (): Promise<ReloadReport> => {
      const next = reloads.then(applyReload);
      reloads = next.catch(() => undefined);
      return next;
    };

    control?.serve({
      status,
      reload,
      start: ({ service }) => mgr.startService(service),
      stop: ({ service }) => mgr.stopService(service),
    });
    notifier.trackStatus(() => serviceSummary(mgr.status()));
    notifier.ready();

    let stopping: Promise<void> | undefined;
    return {
      get config() {
        return running;
      },
      manager: mgr,
      metrics,
      dnsAddresses: () => dns.addresses(),
      metricsPort: () => observe?.port,
      status,
      reload,
      stop: () =>
        (stopping ??= (async () => {
          notifier.stopping();
          await cleanup();
          notifier.close();
        })()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
