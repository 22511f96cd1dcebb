/**
 * The composition root: turns a validated Config into a running daemon (network, worker pool,
 * Synjitsu, services, DNS, observability) and tears it down again in reverse order. It lives outside
 * src/cli so that tests and benchmarks start a daemon in-process exactly as the CLI does.
 */
import { mkdir } from 'node:fs/promises';
import type { BootMasker } from './synjitsu/masker.js';
import { noMasker } from './synjitsu/masker.js';
import type { Config } from './config/types.js';
import { createDnsHandler } from './dns/handler.js';
import { ResponseRateLimiter } from './dns/rrl.js';
import { AddressSet } from './dns/source.js';
import { BootGate } from './services/boot-gate.js';
import { ensurePrivateDir } from './state/private-dir.js';
import { createDnsServer, type DnsServer } from './dns/server.js';
import { createForwarder, withoutSelf, type Forwarder } from './dns/forwarder.js';
import { errorMessage } from './errors.js';
import { startObserveServer, type ObserveServer } from './observe/http.js';
import type { Logger } from './observe/log.js';
import { MetricsRegistry } from './observe/metrics.js';
import { BackendPool } from './pool/pool.js';
import { ServiceManager } from './services/manager.js';
import { SYNJITSU_MASKS, buildSpec, maskTargetOf } from './services/spec.js';
import { StateStore } from './state/store.js';
import { ServiceNetworkSetup } from './services/network.js';
import { createExitWatcher } from './supervise/exit-watch.js';
import { getBackend } from './backends/registry.js';

export interface Daemon {
  readonly config: Config;
  readonly manager: ServiceManager;
  readonly metrics: MetricsRegistry;
  /** Where DNS listens (port resolved when the config asked for port 0). */
  dnsAddresses(): { family: 4 | 6; address: string; port: number }[];
  metricsPort(): number | undefined;
  status(): DaemonStatus;
  stop(): Promise<void>;
}

export interface DaemonStatus {
  version: string;
  uptimeSeconds: number;
  dns: { address: string; port: number }[];
  forwarders: string[];
  services: ReturnType<ServiceManager['status']>;
}

export const VERSION = '0.1.0';

async function createMasker(config: Config, manager: () => ServiceManager, logger: Logger, metrics: MetricsRegistry): Promise<BootMasker> {
  if (config.synjitsu === undefined) return noMasker;
  const { createSynjitsu } = await import('./synjitsu/index.js');
  return createSynjitsu({ iface: config.synjitsu, logger: logger.child({ component: 'synjitsu' }), metrics, onSummon: (service) => manager().summon(service) });
}

export interface StartOptions {
  /** Aborted while start-up is under way (a signal, a fault): start undoes what it made and rejects. */
  signal?: AbortSignal;
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
  try {
    await ensurePrivateDir(config.stateDir, '--state');
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
    masker.configure(specs.filter((s) => SYNJITSU_MASKS.has(s.mask)).map(maskTargetOf));

    const bootGate = new BootGate({ maxBooting: config.maxBooting, summonRate: config.summonRate, metrics });
    manager = new ServiceManager(config, { specs, calls: pool, masker, store, logger, metrics, exitWatcher: createExitWatcher(logger), backend: getBackend, bootGate });
    const mgr = manager;
    await mgr.adopt(saved);
    mgr.startReaper();
    cleanups.push(async () => {
      await mgr.stopAll();
      await store.flush();
    });

    // An upstream that is this daemon itself (resolv.conf naming 127.0.0.1 while we serve :53) would
    // loop every forwarded query back to us; drop it and say so.
    const configured = config.forwarders.map((address) => ({ address, port: config.forwarderPort }));
    const upstreams = withoutSelf(configured, config.bind.map((address) => ({ address, port: config.port })));
    if (upstreams.length < configured.length) logger.warn('ignoring upstreams that are this daemon itself', { dropped: configured.length - upstreams.length });
    let forwarder: Forwarder | undefined;
    if (upstreams.length > 0) {
      forwarder = createForwarder({ upstreams, metrics, logger });
      const fwd = forwarder;
      cleanups.push(() => fwd.close());
    }
    const handler = createDnsHandler({
      summoner: mgr,
      forwarder,
      metrics,
      logger,
      ttl: config.ttl,
      allowForward: new AddressSet(config.allowForward),
      rrl: config.rrlRate > 0 ? new ResponseRateLimiter({ rate: config.rrlRate, slip: config.rrlSlip }) : undefined,
    });
    const dns: DnsServer = await createDnsServer({ addresses: config.bind, port: config.port, handler, logger, metrics });
    cleanups.push(() => dns.close());

    const status = (): DaemonStatus => ({
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      dns: [...new Map(dns.addresses().map((a) => [`${a.address}:${a.port}`, { address: a.address, port: a.port }])).values()],
      forwarders: upstreams.map((u) => `${u.address}:${u.port}`),
      services: mgr.status(),
    });

    let observe: ObserveServer | undefined;
    if (config.metrics) {
      observe = await startObserveServer(config.metrics.host, config.metrics.port, metrics, status);
      const obs = observe;
      cleanups.push(() => obs.close());
    }

    opts.signal?.throwIfAborted();
    logger.info('jitsu ready', {
      dns: [...new Set(dns.addresses().map((a) => `${a.family === 6 ? `[${a.address}]` : a.address}:${a.port}`))].join(','),
      services: config.services.length,
      forwarders: upstreams.map((u) => `${u.address}:${u.port}`).join(',') || 'off',
      synjitsu: config.synjitsu ?? 'off',
      metrics: observe ? `${config.metrics!.host}:${observe.port}` : 'off',
    });

    let stopping: Promise<void> | undefined;
    return {
      config,
      manager: mgr,
      metrics,
      dnsAddresses: () => dns.addresses(),
      metricsPort: () => observe?.port,
      status,
      stop: () => (stopping ??= cleanup()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
