import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceSpec } from '../backends/backend.js';
import type { Config } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { ensureBridge, ensureHostAddresses, prepareServiceNetns, removeBridge, removeHostAddresses, removeServiceNetns } from '../network/index.js';
import type { Logger } from '../observe/log.js';
import { getBackend } from '../backends/registry.js';


/**
 * The daemon's part of the service network: the bridge, the host's gateway address in every service
 * subnet, and a ready netns for each process/container service, all made once at start so a boot is
 * only an exec. Teardown undoes exactly what this daemon made. Whether the bridge is ours is kept in
 * the state dir, so a daemon restarted after a crash still removes the bridge its predecessor made.
 */
export class ServiceNetworkSetup {
  private bridgeCreated = false;
  private hostCidrs: string[] = [];
  private netnsServices: string[] = [];
  private prepared = false;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  /** `adopting`: services the daemon adopts from its state; every other namespace of ours is rebuilt. */
  async prepare(specs: readonly ServiceSpec[], adopting: ReadonlySet<string> = new Set()): Promise<void> {
    if (specs.length === 0) return;
    this.prepared = true;
    const started = performance.now();
    const inherited = await this.predecessorMadeBridge();
    const bridge = await ensureBridge(this.config.bridge);
    this.bridgeCreated = bridge.created || inherited;
    await writeFile(this.ownershipFile(), JSON.stringify({ bridge: this.config.bridge, created: this.bridgeCreated }));
    this.hostCidrs = [...new Set(specs.map((s) => `${s.network.gateway}/${s.network.prefixLength}`))];
    await ensureHostAddresses(this.config.bridge, this.hostCidrs);
    for (const spec of specs) {
      if (!getBackend(spec.backend).capabilities.netns) continue;
      await prepareServiceNetns(spec.network, spec.service, { replace: !adopting.has(spec.service) });
      this.netnsServices.push(spec.service);
    }
    this.logger.info('service network ready', {
      bridge: this.config.bridge,
      created: bridge.created,
      host: this.hostCidrs.join(','),
      netns: this.netnsServices.length,
      ms: (performance.now() - started).toFixed(1),
    });
  }

  /**
   * A reload: `specs` is the new set of services. Host addresses no service uses any more and the
   * namespaces of removed services go; new subnets get their host address; `rebuild` (added and
   * changed services, already stopped) get a fresh namespace, as at start-up.
   */
  async update(specs: readonly ServiceSpec[], rebuild: ReadonlySet<string>): Promise<void> {
    if (!this.prepared) return this.prepare(specs);
    const needsNetns = new Set(specs.filter((s) => getBackend(s.backend).capabilities.netns).map((s) => s.service));
    for (const service of this.netnsServices.filter((name) => !needsNetns.has(name))) {
      await removeServiceNetns(service).catch((err: unknown) => this.logger.warn('could not remove netns', { service, cause: errorMessage(err) }));
    }
    const cidrs = [...new Set(specs.map((s) => `${s.network.gateway}/${s.network.prefixLength}`))];
    const unused = this.hostCidrs.filter((cidr) => !cidrs.includes(cidr));
    if (unused.length > 0) await removeHostAddresses(this.config.bridge, unused);
    await ensureHostAddresses(this.config.bridge, cidrs);
    this.hostCidrs = cidrs;
    const kept = this.netnsServices.filter((name) => needsNetns.has(name));
    for (const spec of specs) {
      if (!needsNetns.has(spec.service) || (kept.includes(spec.service) && !rebuild.has(spec.service))) continue;
      await prepareServiceNetns(spec.network, spec.service, { replace: true });
      if (!kept.includes(spec.service)) kept.push(spec.service);
    }
    this.netnsServices = kept;
  }

  /** Namespaces of saved services that are no longer configured (already stopped by adoption). */
  async removeLeftovers(services: readonly string[]): Promise<void> {
    for (const service of services) {
      if (this.netnsServices.includes(service)) continue;
      await removeServiceNetns(service).catch((err: unknown) => this.logger.warn('could not remove netns', { service, cause: errorMessage(err) }));
    }
  }

  private ownershipFile(): string {
    return join(this.config.stateDir, 'network.json');
  }

  private async predecessorMadeBridge(): Promise<boolean> {
    try {
      const saved = JSON.parse(await readFile(this.ownershipFile(), 'utf8')) as { bridge?: unknown; created?: unknown };
      return saved.bridge === this.config.bridge && saved.created === true;
    } catch {
      return false;
    }
  }

  async teardown(): Promise<void> {
    for (const service of this.netnsServices) {
      await removeServiceNetns(service).catch((err: unknown) => this.logger.warn('could not remove netns', { service, cause: errorMessage(err) }));
    }
    if (this.bridgeCreated) await removeBridge(this.config.bridge);
    else await removeHostAddresses(this.config.bridge, this.hostCidrs);
    await rm(this.ownershipFile(), { force: true });
  }
}
