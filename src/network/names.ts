import { createHash } from 'node:crypto';

/** Linux IFNAMSIZ - 1. */
export const MAX_IFNAME = 15;

function shortHash(text: string, chars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, chars);
}

/** Characters safe in netns file names and interface names alike. */
function sanitise(service: string): string {
  return service.replace(/[^A-Za-z0-9_-]/g, '-');
}

/**
 * The service's network namespace: `jitsu-<service>`. A name that had to be changed (unsafe
 * characters) or shortened gets a hash suffix, so two services never share a namespace.
 */
export function netnsName(service: string): string {
  const clean = sanitise(service);
  if (clean === service && clean.length > 0 && clean.length <= 48) return `jitsu-${clean}`;
  return `jitsu-${clean.slice(0, 40)}-${shortHash(service, 8)}`;
}

/**
 * Host side of the service's veth, at most 15 characters. It starts with the service name so
 * operators (and tests using a name prefix) recognise it: `web-v` for short names, else the first
 * 10 characters + `-` + 4 hex of a hash (`a-very-lon-3f2a`). The two forms cannot collide: the
 * short form ends in `-v`, and `v` is not a hex digit.
 */
export function hostLinkName(service: string): string {
  const clean = sanitise(service);
  if (clean === service && clean.length > 0 && clean.length <= MAX_IFNAME - 2) return `${clean}-v`;
  return `${clean.slice(0, 10)}-${shortHash(service, 4)}`;
}

/** Name of the inside end of the veth, in every service namespace. */
export const NETNS_LINK = 'eth0';

/** Path of a named netns, as `ip netns add` creates it (what setns(2) opens). */
export function netnsPath(netns: string): string {
  return `/run/netns/${netns}`;
}

/** Is this a usable Linux interface name? */
export function isValidIfName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_IFNAME && !/[\s/:]/.test(name) && name !== '.' && name !== '..';
}
