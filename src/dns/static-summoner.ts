/**
 * A fixed table of names -> addresses implementing Summoner. Used by tests, the DNS benchmark
 * server, and as the reference for the zone rules the service layer implements:
 * a configured name's zone is the name minus its first label.
 */
import type { ServiceAnswer, Summoner } from './types.js';

export interface StaticService {
  service: string;
  names: readonly string[];
  ipv4?: readonly string[];
  ipv6?: readonly string[];
  ttl?: number;
  /** Defaults to always ready. */
  ensureUp?: () => true | Promise<void>;
}

const alwaysUp = (): true => true;

export function zoneOfName(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1);
}

export function isInZone(name: string, zone: string): boolean {
  return zone === '' || name === zone || name.endsWith('.' + zone);
}

export function createStaticSummoner(services: readonly StaticService[]): Summoner & { answers: Map<string, ServiceAnswer> } {
  const answers = new Map<string, ServiceAnswer>();
  const zones = new Set<string>();
  for (const s of services) {
    const answer: ServiceAnswer = {
      service: s.service,
      ipv4: s.ipv4 ?? [],
      ipv6: s.ipv6 ?? [],
      ttl: s.ttl ?? 60,
      ensureUp: s.ensureUp ?? alwaysUp,
    };
    for (const raw of s.names) {
      const name = raw.toLowerCase().replace(/\.$/, '');
      answers.set(name, answer);
      zones.add(zoneOfName(name));
    }
  }
  // Longest zone first, so nested zones pick the most specific SOA owner.
  const ordered = [...zones].sort((a, b) => b.length - a.length);
  return {
    answers,
    lookup: (name) => answers.get(name),
    zoneOf: (name) => ordered.find((zone) => isInZone(name, zone)),
  };
}
