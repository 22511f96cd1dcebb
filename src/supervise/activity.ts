/**
 * What "idle" is measured by: traffic on the service's host-side link (veth or tap byte counters,
 * both directions) and, for services in their own network namespace, any TCP connection still
 * open in it. Read on each sweep: two small /sys reads and one sock_diag dump per running service.
 */
import { readFileSync } from 'node:fs';
import type { BackendHandle } from '../backends/backend.js';
import { openTcpConnections } from '../network/sockets.js';

export interface ActivitySample {
  /** rx + tx bytes of the host-side link; undefined when the handle names no link we can read. */
  bytes: number | undefined;
  /** Open (not listening, not closed) TCP connections in the service's netns; undefined when not known. */
  connections: number | undefined;
}

function counter(link: string, which: 'rx_bytes' | 'tx_bytes'): number | undefined {
  try {
    const n = Number(readFileSync(`/sys/class/net/${link}/statistics/${which}`, 'latin1'));
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export function linkBytes(link: string): number | undefined {
  const rx = counter(link, 'rx_bytes');
  const tx = counter(link, 'tx_bytes');
  return rx === undefined || tx === undefined ? undefined : rx + tx;
}

export function sampleActivity(handle: BackendHandle, inOwnNetns: boolean): ActivitySample {
  return {
    bytes: handle.link !== undefined ? linkBytes(handle.link) : undefined,
    connections: inOwnNetns && typeof handle.pid === 'number' ? openTcpConnections(handle.pid) : undefined,
  };
}

/** Did the service do anything between two samples? Unknown counts as nothing (the query rule still holds). */
export function wasActive(previous: ActivitySample | undefined, current: ActivitySample): boolean {
  if ((current.connections ?? 0) > 0) return true;
  return previous?.bytes !== undefined && current.bytes !== undefined && current.bytes !== previous.bytes;
}
