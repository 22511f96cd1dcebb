import type { ServiceSpec } from '../backends/backend.js';
import type { ServiceConfig } from '../config/types.js';

/** What a reload does to the services, by name, in the new configuration's order. */
export interface ServicePlan {
  /** New names: they answer from now on (and boot on their first query). */
  added: string[];
  /** Gone from the configuration: stopped, their network removed. */
  removed: string[];
  /** Same name, different definition: stopped now; the next query boots the new definition. */
  changed: string[];
  /** Identical: left running as they are (same process, same connections). */
  unchanged: string[];
}

/**
 * Everything that defines a service: its configuration (names, address, backend keys, mask,
 * supervision policy, response delay) and the spec the backend gets from it (network, run dir,
 * backend URI). Two services with the same fingerprint are interchangeable.
 */
export function serviceFingerprint(service: ServiceConfig, spec: ServiceSpec): string {
  return JSON.stringify({ service, spec });
}

/** Compares fingerprints by service name. */
export function planServices(current: ReadonlyMap<string, string>, next: ReadonlyMap<string, string>): ServicePlan {
  const plan: ServicePlan = { added: [], removed: [], changed: [], unchanged: [] };
  for (const [name, fingerprint] of next) {
    const before = current.get(name);
    if (before === undefined) plan.added.push(name);
    else if (before === fingerprint) plan.unchanged.push(name);
    else plan.changed.push(name);
  }
  for (const name of current.keys()) if (!next.has(name)) plan.removed.push(name);
  return plan;
}
