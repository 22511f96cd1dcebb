/**
 * The sockets open in a process's network namespace: what readiness probes (is it listening yet?)
 * and the idle sweep (does it still hold a connection?) look at.
 *
 * Asked of the kernel's sock_diag over netlink, from a socket opened in that namespace: ~40 µs
 * per family. /proc/PID/net/tcp, the fallback where netlink cannot be used (no addon, no
 * CAP_SYS_ADMIN for setns), costs 0.6 ms in a service's namespace and 8 ms in one without a hash
 * table of its own, because every read walks every bucket of the kernel's TCP hash tables.
 */
import { readFileSync } from 'node:fs';
import { writeIpv4, writeIpv6 } from '../dns/address.js';
import { NETLINK_SOCK_DIAG, NLM_F_DUMP, NLM_F_REQUEST, NetlinkError, netlinkMessage, netlinkPayloads, netlinkTransact } from './netlink.js';

/** TCP states, include/net/tcp_states.h (UDP sockets report CLOSE, or ESTABLISHED when connected). */
export const TCP_STATE = { ESTABLISHED: 1, TIME_WAIT: 6, CLOSE: 7, LISTEN: 10 } as const;

/** Every state bit (1..12: ESTABLISHED .. NEW_SYN_RECV). */
export const ALL_STATES = 0x1ffe;
const bit = (state: number): number => 1 << state;

export interface SocketEntry {
  /** Local port. */
  port: number;
  /** TCP state number (TCP_STATE). */
  state: number;
}

export type SocketProtocol = 'tcp' | 'udp';

const IPPROTO = { tcp: 6, udp: 17 } as const;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DIAG_BY_FAMILY = 20;
/** inet_diag_req_v2: family, protocol, ext, pad, states (4), inet_diag_sockid (48). */
const DIAG_REQ_BYTES = 56;
/** inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (sport first, big-endian). */
const DIAG_MSG_MIN_BYTES = 72;
const INET_DIAG_NOCOOKIE = 0xffffffff;

function diagDump(family: number, protocol: SocketProtocol, states: number, seq: number): Buffer {
  const req = Buffer.alloc(DIAG_REQ_BYTES);
  req[0] = family;
  req[1] = IPPROTO[protocol];
  req.writeUInt32LE(states >>> 0, 4);
  // idiag_cookie: none to match.
  req.writeUInt32LE(INET_DIAG_NOCOOKIE, 48);
  req.writeUInt32LE(INET_DIAG_NOCOOKIE, 52);
  return netlinkMessage(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, req);
}

/** The sockets of one sock_diag dump reply. */
export function parseDiagReply(reply: Buffer, what: string): SocketEntry[] {
  const out: SocketEntry[] = [];
  for (const msg of netlinkPayloads(reply, what)) {
    if (msg.length < DIAG_MSG_MIN_BYTES) continue;
    out.push({ port: msg.readUInt16BE(4), state: msg[1]! });
  }
  return out;
}

/**
 * Local ports and states from /proc/net/{tcp,tcp6,udp,udp6} text. Columns: `sl local_address
 * rem_address st ...`, local_address = HEXADDR:HEXPORT, st in hex.
 */
export function parseProcNet(text: string): SocketEntry[] {
  const out: SocketEntry[] = [];
  let start = text.indexOf('\n') + 1; // skip the header line
  while (start > 0 && start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const cols = text.slice(start, end).trim().split(/\s+/);
    start = end + 1;
    const local = cols[1];
    const state = cols[3] ? Number.parseInt(cols[3], 16) : Number.NaN;
    if (!local || !Number.isFinite(state)) continue;
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (Number.isFinite(port)) out.push({ port, state });
  }
  return out;
}

/** netnsSockets read from /proc/PID/net instead (its fallback; slow, see the top of this file). */
export function procNetSockets(pid: number, protocol: SocketProtocol, states: number): SocketEntry[] | undefined {
  let read = false;
  const out: SocketEntry[] = [];
  for (const file of [protocol, `${protocol}6`]) {
    try {
      for (const e of parseProcNet(readFileSync(`/proc/${pid}/net/${file}`, 'latin1'))) if ((states & bit(e.state)) !== 0) out.push(e);
      read = true;
    } catch {
      // no such table (IPv6 off) or the process just went away
    }
  }
  return read ? out : undefined;
}

/**
 * netnsSockets asked of sock_diag only: throws (the addon's errno text, or NetlinkError for the
 * IPv4 dump) where it cannot answer.
 */
export function diagSockets(pid: number, protocol: SocketProtocol, states: number): SocketEntry[] {
  const [v4, v6] = netlinkTransact(NETLINK_SOCK_DIAG, `/proc/${pid}/ns/net`, [diagDump(AF_INET, protocol, states, 1), diagDump(AF_INET6, protocol, states, 2)]);
  const sockets = parseDiagReply(v4!, `sock_diag ${protocol} dump`);
  try {
    return sockets.concat(parseDiagReply(v6!, `sock_diag ${protocol}6 dump`));
  } catch {
    return sockets; // IPv6 off in this kernel or namespace: nothing listens there
  }
}

/**
 * The `protocol` sockets (IPv4 and IPv6) whose state is in the `states` mask, in the network
 * namespace of `pid`; undefined when neither sock_diag nor /proc can tell (the process is gone).
 */
export function netnsSockets(pid: number, protocol: SocketProtocol, states: number): SocketEntry[] | undefined {
  try {
    return diagSockets(pid, protocol, states);
  } catch {
    return procNetSockets(pid, protocol, states);
  }
}

/** An exact sock_diag lookup: the socket a SYN from nowhere (0.0.0.0:0) to `ip`:`port` would reach. */
function diagLookup(family: 4 | 6, ip: string, port: number, seq: number): Buffer {
  const req = Buffer.alloc(DIAG_REQ_BYTES);
  req[0] = family === 4 ? AF_INET : AF_INET6;
  req[1] = IPPROTO.tcp;
  req.writeUInt32LE(ALL_STATES, 4);
  // inet_diag_sockid: the lookup's local end is idiag_src/idiag_sport; the remote end stays zero.
  req.writeUInt16BE(port, 8);
  if (family === 4) writeIpv4(ip, req, 12);
  else writeIpv6(ip, req, 12);
  req.writeUInt32LE(INET_DIAG_NOCOOKIE, 48);
  req.writeUInt32LE(INET_DIAG_NOCOOKIE, 52);
  return netlinkMessage(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, req);
}

const ENOENT = 2;

/**
 * Would each of `ports` take a connection to `address` in the network namespace of `pid`? Asks the
 * kernel's own listener lookup for an incoming SYN, once per port. A listener bound elsewhere
 * (127.0.0.1, another address) does not count, where a dump counts any LISTEN socket on the port.
 * One lookup costs ~60 µs on a cold path; a LISTEN dump walks the kernel's whole listening hash,
 * ~270 µs cold (docs/BENCHMARKS.md, "Fewer syscalls on the warm path"). Without sock_diag (no
 * addon, no CAP_SYS_ADMIN) it falls back to listeningTcpPorts, which cannot tell addresses apart.
 */
export function tcpListeningAt(pid: number, address: { family: 4 | 6; ip: string }, ports: readonly number[]): boolean {
  let replies: Buffer[];
  try {
    replies = netlinkTransact(NETLINK_SOCK_DIAG, `/proc/${pid}/ns/net`, ports.map((p, i) => diagLookup(address.family, address.ip, p, i + 1)));
  } catch {
    return anyAddressListening(pid, ports);
  }
  for (const [i, reply] of replies.entries()) {
    try {
      if (!parseDiagReply(reply, `sock_diag lookup of port ${ports[i]}`).some((s) => s.state === TCP_STATE.LISTEN)) return false;
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENOENT) return false;
      return anyAddressListening(pid, ports);
    }
  }
  return true;
}

function anyAddressListening(pid: number, ports: readonly number[]): boolean {
  const listening = listeningTcpPorts(pid);
  return ports.every((p) => listening.has(p));
}

/** TCP ports in LISTEN state in the network namespace of `pid`. */
export function listeningTcpPorts(pid: number): Set<number> {
  return new Set((netnsSockets(pid, 'tcp', bit(TCP_STATE.LISTEN)) ?? []).map((s) => s.port));
}

/** Any bound UDP socket in the network namespace of `pid`? */
export function hasUdpSocket(pid: number): boolean {
  return (netnsSockets(pid, 'udp', ALL_STATES)?.length ?? 0) > 0;
}

/** States that are no client connection: LISTEN, CLOSE, TIME_WAIT. */
const CONNECTION_STATES = ALL_STATES & ~(bit(TCP_STATE.LISTEN) | bit(TCP_STATE.CLOSE) | bit(TCP_STATE.TIME_WAIT));

/** Is `state` one of a client connection's (not a listener, closed or in TIME_WAIT)? */
export const isConnectionState = (state: number): boolean => (CONNECTION_STATES & bit(state)) !== 0;

/** TCP connections open in the network namespace of `pid`; undefined when it cannot be told. */
export function openTcpConnections(pid: number): number | undefined {
  return netnsSockets(pid, 'tcp', CONNECTION_STATES)?.length;
}
