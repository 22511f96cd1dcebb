/**
 * Netlink messages, built and read here; the addon only moves their bytes (native/netlink.cc), from
 * a socket it opens inside the network namespace asked for.
 */
import { loadNative } from '../native/index.js';

export const NETLINK_ROUTE = 0;
export const NETLINK_SOCK_DIAG = 4;

const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;

/** A request: the 16-byte header (length, type, flags, seq, pid 0) and `payload`. */
export function netlinkMessage(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const msg = Buffer.alloc(NLMSG_HDRLEN + payload.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(type, 4);
  msg.writeUInt16LE(flags, 6);
  msg.writeUInt32LE(seq, 8);
  payload.copy(msg, NLMSG_HDRLEN);
  return msg;
}

/** The kernel refused a request: `errno` is its (positive) error number. */
export class NetlinkError extends Error {
  constructor(
    readonly errno: number,
    what: string,
  ) {
    super(`${what}: netlink error ${errno}`);
    this.name = 'NetlinkError';
  }
}

/**
 * The payloads of a reply's data messages, in order. An NLMSG_ERROR with a non-zero code throws
 * NetlinkError; an ack (code 0) and NLMSG_DONE end the reply.
 */
export function netlinkPayloads(reply: Buffer, what: string): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + NLMSG_HDRLEN <= reply.length; ) {
    const len = reply.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > reply.length) break;
    const type = reply.readUInt16LE(off + 4);
    if (type === NLMSG_DONE) break;
    if (type === NLMSG_ERROR) {
      const code = len >= NLMSG_HDRLEN + 4 ? reply.readInt32LE(off + NLMSG_HDRLEN) : 0;
      if (code !== 0) throw new NetlinkError(-code, what);
      break;
    }
    out.push(reply.subarray(off + NLMSG_HDRLEN, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * Sends each request in turn on one netlink socket of `protocol` opened in the namespace at
 * `nsPath` (null: the caller's own) and returns each one's reply. Synchronous: for worker threads
 * and short, bounded requests (the addon gives up after 1 s without an answer).
 */
export function netlinkTransact(protocol: number, nsPath: string | null, requests: Buffer[]): Buffer[] {
  return loadNative().netlinkTransact(protocol, nsPath, requests);
}
