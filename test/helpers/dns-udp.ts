/**
 * A bounded one-shot DNS client over UDP, for tests that count answers. Each query has its own
 * socket (a fresh source port) and a random ID, and only a reply with that ID, the QR bit and the
 * same question counts: a late, duplicated or retried reply can never pass for the answer to
 * another query. It never retries, so one query is one packet out and at most one answer in.
 * Written by hand (not with src/dns) so that the daemon's codec is not checked against itself.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';

export const RCODE_NAMES: Readonly<Record<number, string>> = { 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED' };

export type UdpQueryResult =
  | { kind: 'answer'; rcode: string; addresses: string[]; ms: number }
  | { kind: 'timeout'; ms: number }
  /** The caller's signal fired first; `reason` is the signal's reason. */
  | { kind: 'aborted'; reason: unknown; ms: number }
  | { kind: 'error'; message: string; ms: number };

export interface UdpQueryOptions {
  port: number;
  name: string;
  timeoutMs: number;
  host?: string;
  signal?: AbortSignal;
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter((l) => l !== '')) {
    const bytes = Buffer.from(label, 'ascii');
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** An A/IN query with RD set. */
export function encodeQuery(id: number, name: string): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(1, 0); // A
  tail.writeUInt16BE(1, 2); // IN
  return Buffer.concat([header, encodeName(name), tail]);
}

/** Offset just past the (possibly compressed) name at `offset`, or -1 if it runs off the packet. */
function skipName(buf: Buffer, offset: number): number {
  let at = offset;
  for (let guard = 0; guard < 128 && at < buf.length; guard++) {
    const len = buf[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2 <= buf.length ? at + 2 : -1;
    at += 1 + len;
  }
  return -1;
}

/**
 * The reply to `query` (same ID, QR set, the same question bytes), or undefined for anything
 * else. Returns the rcode and the A records of the answer section.
 */
export function matchReply(query: Buffer, reply: Buffer): { rcode: string; addresses: string[] } | undefined {
  if (reply.length < 12 || reply.readUInt16BE(0) !== query.readUInt16BE(0)) return undefined;
  const flags = reply.readUInt16BE(2);
  if ((flags & 0x8000) === 0 || reply.readUInt16BE(4) !== 1) return undefined;
  const question = query.subarray(12);
  // Names are case-insensitive, and a server may echo the question with another case.
  if (reply.length < 12 + question.length || reply.subarray(12, 12 + question.length).toString('latin1').toLowerCase() !== question.toString('latin1').toLowerCase()) return undefined;
  const rcode = RCODE_NAMES[flags & 0x0f] ?? `RCODE${flags & 0x0f}`;
  const addresses: string[] = [];
  let at = 12 + question.length;
  for (let i = 0; i < reply.readUInt16BE(6); i++) {
    at = skipName(reply, at);
    if (at < 0 || at + 10 > reply.length) return undefined;
    const type = reply.readUInt16BE(at);
    const rdLength = reply.readUInt16BE(at + 8);
    at += 10;
    if (at + rdLength > reply.length) return undefined;
    if (type === 1 && rdLength === 4) addresses.push([...reply.subarray(at, at + 4)].join('.'));
    at += rdLength;
  }
  return { rcode, addresses };
}

/** One query, one packet: resolves with its answer, or how it ended without one. Never rejects. */
export function udpQuery(opts: UdpQueryOptions): Promise<UdpQueryResult> {
  const t0 = performance.now();
  const elapsed = (): number => performance.now() - t0;
  const query = encodeQuery(randomInt(0, 0x10000), opts.name);
  return new Promise((resolve) => {
    if (opts.signal?.aborted) {
      resolve({ kind: 'aborted', reason: opts.signal.reason, ms: 0 });
      return;
    }
    const socket = createSocket('udp4');
    let settled = false;
    const finish = (result: UdpQueryResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.close();
      resolve(result);
    };
    const onAbort = (): void => finish({ kind: 'aborted', reason: opts.signal!.reason, ms: elapsed() });
    const timer = setTimeout(() => finish({ kind: 'timeout', ms: elapsed() }), opts.timeoutMs);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => finish({ kind: 'error', message: err.message, ms: elapsed() }));
    socket.on('message', (msg) => {
      const reply = matchReply(query, msg);
      if (reply) finish({ kind: 'answer', ...reply, ms: elapsed() });
    });
    socket.send(query, opts.port, opts.host ?? '127.0.0.1');
  });
}
