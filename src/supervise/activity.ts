/**
 * What "idle" is measured by: traffic on the service's host-side link (veth or tap byte counters,
 * both directions) and, for services in their own network namespace, any TCP connection still
 * open in it. Read on each sweep; a few small /sys and /proc reads per running service.
 */
import { readFileSync } from 'node:fs';
import type { BackendHandle } from '../backends/backend.js';
import { parseProcNet } from '../backends/common/proc.js';

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

/** TCP states from include/net/tcp_states.h that are no client connection: LISTEN (0A), CLOSE (07), TIME_WAIT (06). */
const NOT_A_CONNECTION = new Set(['0A', '07', '06']);

/** Count connections in /proc/net/tcp{,6} text. */
export function countOpenConnections(text: string): number {
  return parseProcNet(text).filter((socket) => !NOT_A_CONNECTION.has(socket.state)).length;
}

/** Connections open in the network namespace `pid` lives in; undefined when /proc cannot tell. */
export function netnsConnections(pid: number): number | undefined {
  let total = 0;
  let read = false;
  for (const file of ['tcp', 'tcp6']) {
    try {
      total += countOpenConnections(readFileSync(`/proc/${pid}/net/${file}`, 'latin1'));
      read = true;
    } catch {
      // no such table (IPv6 off) or the process just went away
    }
  }
  return read ? total : undefined;
}

export function sampleActivity(handle: BackendHandle, inOwnNetns: boolean): ActivitySample {
  return {
    bytes: handle.link !== undefined ? linkBytes(handle.link) : undefined,
    connections: inOwnNetns && typeof handle.pid === 'number' ? netnsConnections(handle.pid) : undefined,
  };
}

/** Did the service do anything between two samples? Unknown counts as nothing (the query rule still holds). */
export function wasActive(previous: ActivitySample | undefined, current: ActivitySample): boolean {
  if ((current.connections ?? 0) > 0) return true;
  return previous?.bytes !== undefined && current.bytes !== undefined && current.bytes !== previous.bytes;
}
