import { join } from 'node:path';
import type { ServiceNetwork, ServiceSpec } from '../backends/backend.js';
import { maskStrategy } from '../masking/registry.js';
import type { MaskTarget } from '../synjitsu/masker.js';
import type { Config, ServiceConfig } from '../config/types.js';
import { stableMac } from '../network/mac.js';
import { defaultGateway, parseCidr } from '../network/addr.js';

/** Where a service sits: its /24 (IPv4) or /64 (IPv6), and the host's address in it as gateway. */
export function serviceNetwork(service: ServiceConfig, config: Config): ServiceNetwork {
  const host = config.hostCidr !== undefined ? explicitHost(config.hostCidr) : defaultGateway(service.ip);
  return {
    bridge: config.bridge,
    family: service.family,
    ip: service.ip,
    prefixLength: host.prefixLength,
    gateway: host.gateway,
    mac: stableMac(`service:${service.name}`),
  };
}

function explicitHost(cidr: string): { gateway: string; prefixLength: number } {
  const parsed = parseCidr(cidr);
  return { gateway: parsed.address, prefixLength: parsed.prefixLength };
}

export function serviceRunDir(config: Config, service: string): string {
  return join(config.stateDir, 'run', service);
}

export function maskTargetOf(spec: ServiceSpec): MaskTarget {
  return { service: spec.service, ip: spec.network.ip, mask: spec.mask, mac: spec.network.mac };
}

/** What Synjitsu watches: the services whose mask runs on the packet path. */
export function packetPathTargets(specs: readonly ServiceSpec[]): MaskTarget[] {
  return specs.filter((s) => maskStrategy(s.mask).onPacketPath).map(maskTargetOf);
}

export function buildSpec(service: ServiceConfig, config: Config): ServiceSpec {
  const spec: ServiceSpec = {
    service: service.name,
    backend: service.backend,
    network: serviceNetwork(service, config),
    mask: service.mask,
    options: service.options,
    runDir: serviceRunDir(config, service.name),
    snapshots: { dir: config.snapshotDir, maxBytes: config.snapshotMaxMiB * 1024 * 1024 },
  };
  if (config.backendUri !== undefined) spec.backendUri = config.backendUri;
  if (service.ready !== undefined) spec.ready = service.ready;
  return spec;
}
