/**
 * Upstream forwarding over UDP, with TCP when a reply comes back truncated.
 *
 * Spoofing resistance (RFC 5452): every attempt gets a crypto-random ID and goes out on a socket
 * drawn at random from a small pool of sockets bound to crypto-random ports; each socket is
 * retired after a few uses. A reply is accepted only if it comes from the upstream's address and
 * port and carries our ID and the exact question (case-insensitively). Anything else is ignored.
 */
import { randomFillSync } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { JitsuError } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import { formatIpv6, writeIpv6 } from './address.js';
import { Flag, HEADER_SIZE } from './constants.js';
import { DnsMetrics } from './metrics.js';

export interface Upstream {
  address: string;
  port: number;
}

export interface ForwarderOptions {
  upstreams: readonly Upstream[];
  metrics: MetricsRegistry;
  logger: Logger;
  /** Per attempt. Default 2000 ms. */
  timeoutMs?: number;
  /** Extra UDP attempts after a timeout (each on the next upstream). Default 1. */
  retries?: number;
  /** Forwarded queries in flight; beyond this a query fails at once. Default 1024. */
  maxOutstanding?: number;
  /** Sockets per address family. Default 8. */
  poolSize?: number;
  /** Queries a socket sends before it is replaced by one on a fresh random port. Default 64. */
  socketUses?: number;
}

export interface Forwarder {
  readonly upstreams: readonly Upstream[];
  /**
   * Sends `query` (a client query whose first question ends at `questionEnd`) upstream and
   * resolves with the reply, carrying the client's original ID. Rejects with
   * JitsuError('UPSTREAM_FAILED', ..., { reason }) on timeout, overload or network error.
   */
  forward(query: Buffer, questionEnd: number): Promise<Buffer>;
  /** Queries currently waiting on an upstream. */
  outstanding(): number;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Upstream list

/** `nameserver` addresses from resolv.conf text, in order. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && net.isIP(m[1]!.split('%')[0]!) !== 0) out.push(m[1]!);
  }
  return out;
}

function normalizeAddress(address: string): string {
  if (net.isIPv6(address) && !address.includes('%')) {
    const bytes = new Uint8Array(16);
    writeIpv6(address, bytes, 0);
    return formatIpv6(bytes, 0);
  }
  return address;
}

/**
 * The upstream list as the original Jitsu derives it: an explicit forwarder (comma-separated
 * addresses allowed) or else resolv.conf's nameservers. `0.0.0.0` (or `::`) first disables
 * forwarding: the result is empty.
 */
export function resolveUpstreams(opts: { forwarder?: string | undefined; port?: number; resolvConfPath?: string } = {}): Upstream[] {
  const port = opts.port ?? 53;
  let addresses: string[];
  if (opts.forwarder !== undefined && opts.forwarder !== '') {
    addresses = opts.forwarder.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const a of addresses) {
      if (net.isIP(a.split('%')[0]!) === 0)
        throw new JitsuError('CONFIG_INVALID', `forwarder ${JSON.stringify(a)} is not an IP address (use e.g. 9.9.9.9 or 0.0.0.0 to disable)`, {
          key: 'forwarder',
        });
    }
  } else {
    const path = opts.resolvConfPath ?? '/etc/resolv.conf';
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return [];
    }
    addresses = parseResolvConf(text);
  }
  if (addresses.length === 0 || addresses[0] === '0.0.0.0' || addresses[0] === '::') return [];
  return addresses.map((address) => ({ address: normalizeAddress(address), port }));
}

/**
 * Drops upstreams that are this server itself (resolv.conf often names 127.0.0.1 while the
 * daemon listens there on port 53): forwarding to ourselves would loop until every slot is
 * used. A wildcard listener (0.0.0.0 or ::) counts as every local address.
 */
export function withoutSelf(upstreams: readonly Upstream[], listening: readonly { address: string; port: number }[]): Upstream[] {
  let local: Set<string> | undefined;
  const isLocal = (address: string): boolean => {
    if (local === undefined) {
      local = new Set(['127.0.0.1', '::1']);
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) local.add(normalizeAddress(a.address));
    }
    return local.has(address) || address.startsWith('127.');
  };
  return upstreams.filter(
    (u) =>
      !listening.some(
        (l) =>
          l.port === u.port &&
          (normalizeAddress(l.address) === u.address || ((l.address === '0.0.0.0' || l.address === '::') && isLocal(u.address))),
      ),
  );
}

// ---------------------------------------------------------------------------------------------
// Randomness: crypto bytes drawn from a refilled buffer, so an ID costs no syscall.

const randomPool = Buffer.alloc(4096);
let randomAt = randomPool.length;

function random16(): number {
  if (randomAt + 2 > randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  const v = (randomPool[randomAt]! << 8) | randomPool[randomAt + 1]!;
  randomAt += 2;
  return v;
}

function randomPort(): number {
  // 1024..65535; modulo bias over 65536 is < 2%, irrelevant for port choice.
  return 1024 + (random16() % (65536 - 1024));
}

// ---------------------------------------------------------------------------------------------

interface Attempt {
  id: number;
  socket: PooledSocket;
  upstream: Upstream;
  timer: NodeJS.Timeout;
  job: Job;
}

interface Job {
  query: Buffer;
  questionEnd: number;
  clientId: number;
  attemptsLeft: number;
  upstreamIndex: number;
  resolve: (reply: Buffer) => void;
  reject: (err: Error) => void;
  done: boolean;
  /** Re-sends after a socket failed to bind its random port (not counted as attempts). */
  rebinds: number;
}

interface PooledSocket {
  socket: dgram.Socket;
  family: 4 | 6;
  uses: number;
  retired: boolean;
  pending: Map<number, Attempt>;
}

function questionMatches(reply: Buffer, query: Buffer, questionEnd: number): boolean {
  if (reply.length < questionEnd) return false;
  if (((reply[4]! << 8) | reply[5]!) !== 1) return false;
  const nameEnd = questionEnd - 4;
  for (let i = HEADER_SIZE; i < questionEnd; i++) {
    let a = reply[i]!;
    let b = query[i]!;
    if (a === b) continue;
    if (i >= nameEnd) return false;
    if (a >= 0x41 && a <= 0x5a) a += 0x20;
    if (b >= 0x41 && b <= 0x5a) b += 0x20;
    if (a !== b) return false;
  }
  return true;
}

class UdpForwarder implements Forwarder {
  readonly upstreams: readonly Upstream[];
  private readonly metrics: DnsMetrics;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxOutstanding: number;
  private readonly poolSize: number;
  private readonly socketUses: number;
  private readonly pools: Record<4 | 6, (PooledSocket | undefined)[]> = { 4: [], 6: [] };
  private readonly allSockets = new Set<PooledSocket>();
  private readonly tcpSockets = new Set<net.Socket>();
  private inFlight = 0;
  private closed = false;

  constructor(opts: ForwarderOptions) {
    this.upstreams = opts.upstreams.map((u) => ({ address: normalizeAddress(u.address), port: u.port }));
    this.metrics = new DnsMetrics(opts.metrics);
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.retries = opts.retries ?? 1;
    this.maxOutstanding = opts.maxOutstanding ?? 1024;
    this.poolSize = Math.max(1, opts.poolSize ?? 8);
    this.socketUses = Math.max(1, opts.socketUses ?? 64);
  }

  outstanding(): number {
    return this.inFlight;
  }

  forward(query: Buffer, questionEnd: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(this.failure('closed', 'forwarder is closed'));
    if (this.upstreams.length === 0) return Promise.reject(this.failure('no_upstream', 'no upstream configured'));
    if (this.inFlight >= this.maxOutstanding) {
      this.metrics.forwardOverload.inc();
      return Promise.reject(
        new JitsuError('UPSTREAM_FAILED', `too many forwarded queries in flight (${this.maxOutstanding})`, { reason: 'overload' }),
      );
    }
    this.inFlight++;
    this.metrics.forwarded.inc();
    return new Promise<Buffer>((resolve, reject) => {
      const job: Job = {
        // Own copy: the ID is rewritten per attempt and the caller may reuse its buffer.
        query: Buffer.from(query),
        questionEnd,
        clientId: (query[0]! << 8) | query[1]!,
        attemptsLeft: 1 + this.retries,
        upstreamIndex: random16() % this.upstreams.length,
        resolve,
        reject,
        done: false,
        rebinds: 0,
      };
      this.attempt(job);
    });
  }

  private failure(reason: string, message: string): JitsuError {
    this.metrics.upstreamFailure(reason);
    return new JitsuError('UPSTREAM_FAILED', `forwarding failed: ${message}`, { reason });
  }

  private finish(job: Job, reply: Buffer | undefined, err?: JitsuError): void {
    if (job.done) return;
    job.done = true;
    this.inFlight--;
    if (reply) {
      reply[0] = job.clientId >> 8;
      reply[1] = job.clientId & 0xff;
      job.resolve(reply);
    } else job.reject(err!);
  }

  private attempt(job: Job): void {
    if (this.closed) return this.finish(job, undefined, this.failure('closed', 'forwarder is closed'));
    job.attemptsLeft--;
    const upstream = this.upstreams[job.upstreamIndex % this.upstreams.length]!;
    job.upstreamIndex++;
    const family: 4 | 6 = net.isIPv6(upstream.address) ? 6 : 4;
    const ps = this.socketFor(family);
    let id = random16();
    while (ps.pending.has(id)) id = random16();
    const attempt: Attempt = {
      id,
      socket: ps,
      upstream,
      job,
      timer: setTimeout(() => this.onTimeout(attempt), this.timeoutMs),
    };
    ps.pending.set(id, attempt);
    const q = job.query;
    q[0] = id >> 8;
    q[1] = id & 0xff;
    try {
      ps.socket.send(q, upstream.port, upstream.address, (err) => {
        if (err) this.onAttemptError(attempt, err);
      });
    } catch (err) {
      // e.g. the socket was closed after an error: try again on a fresh one.
      ps.retired = true;
      this.onAttemptError(attempt, err instanceof Error ? err : new Error(String(err)));
    }
  }

  private settleAttempt(attempt: Attempt): void {
    clearTimeout(attempt.timer);
    const ps = attempt.socket;
    ps.pending.delete(attempt.id);
    if (ps.retired && ps.pending.size === 0) this.closeSocket(ps);
  }

  private onTimeout(attempt: Attempt): void {
    this.metrics.upstreamTimeouts.inc();
    this.settleAttempt(attempt);
    const job = attempt.job;
    if (job.done) return;
    if (job.attemptsLeft > 0) this.attempt(job);
    else {
      this.logger.debug('upstream timeout', { upstream: attempt.upstream.address });
      this.finish(job, undefined, this.failure('timeout', `no reply from ${attempt.upstream.address} within ${this.timeoutMs} ms`));
    }
  }

  private onAttemptError(attempt: Attempt, err: Error): void {
    if (!attempt.socket.pending.has(attempt.id) || attempt.socket.pending.get(attempt.id) !== attempt) return;
    this.settleAttempt(attempt);
    const job = attempt.job;
    if (job.attemptsLeft > 0) this.attempt(job);
    else this.finish(job, undefined, this.failure('network', `${attempt.upstream.address}: ${err.message}`));
  }

  private onMessage(ps: PooledSocket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < HEADER_SIZE) {
      this.metrics.upstreamMismatched.inc();
      return;
    }
    const attempt = ps.pending.get((msg[0]! << 8) | msg[1]!);
    if (
      attempt === undefined ||
      rinfo.port !== attempt.upstream.port ||
      rinfo.address !== attempt.upstream.address ||
      (msg[2]! & 0x80) === 0 ||
      !questionMatches(msg, attempt.job.query, attempt.job.questionEnd)
    ) {
      this.metrics.upstreamMismatched.inc();
      return;
    }
    this.settleAttempt(attempt);
    const job = attempt.job;
    if ((((msg[2]! << 8) | msg[3]!) & Flag.TC) !== 0) {
      this.metrics.upstreamTcpRetries.inc();
      this.viaTcp(job, attempt.upstream);
      return;
    }
    this.finish(job, msg);
  }

  private viaTcp(job: Job, upstream: Upstream): void {
    const id = random16();
    const q = job.query;
    q[0] = id >> 8;
    q[1] = id & 0xff;
    const frame = Buffer.allocUnsafe(2 + q.length);
    frame.writeUInt16BE(q.length, 0);
    q.copy(frame, 2);
    const sock = net.connect({ host: upstream.address, port: upstream.port });
    this.tcpSockets.add(sock);
    let received: Buffer = Buffer.alloc(0);
    const fail = (message: string): void => {
      sock.destroy();
      this.finish(job, undefined, this.failure('tcp', `${upstream.address} over TCP: ${message}`));
    };
    const timer = setTimeout(() => {
      this.metrics.upstreamTimeouts.inc();
      fail(`no reply within ${this.timeoutMs} ms`);
    }, this.timeoutMs);
    sock.on('connect', () => sock.write(frame));
    sock.on('data', (chunk: Buffer) => {
      // Bounded: we stop at the first frame, at most 65537 bytes.
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const len = received.readUInt16BE(0);
      if (received.length < 2 + len) return;
      clearTimeout(timer);
      const reply = Buffer.from(received.subarray(2, 2 + len));
      sock.destroy();
      if (len < HEADER_SIZE || reply.readUInt16BE(0) !== id || !questionMatches(reply, q, job.questionEnd)) {
        this.metrics.upstreamMismatched.inc();
        this.finish(job, undefined, this.failure('tcp', `${upstream.address} over TCP: reply does not match the query`));
        return;
      }
      this.finish(job, reply);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      fail(err.message);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      this.tcpSockets.delete(sock);
      if (!job.done) this.finish(job, undefined, this.failure('tcp', `${upstream.address} closed the TCP connection`));
    });
  }

  /** A random pool slot; a slot whose socket is used up gets a fresh socket on a new random port. */
  private socketFor(family: 4 | 6): PooledSocket {
    const pool = this.pools[family];
    const slot = random16() % this.poolSize;
    let ps = pool[slot];
    if (ps === undefined || ps.uses >= this.socketUses) {
      if (ps !== undefined) {
        ps.retired = true;
        if (ps.pending.size === 0) this.closeSocket(ps);
      }
      ps = this.openSocket(family);
      pool[slot] = ps;
    }
    ps.uses++;
    return ps;
  }

  private openSocket(family: 4 | 6): PooledSocket {
    const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6' });
    const ps: PooledSocket = { socket, family, uses: 0, retired: false, pending: new Map() };
    this.allSockets.add(ps);
    socket.on('message', (msg, rinfo) => this.onMessage(ps, msg, rinfo));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A bind error (port taken) fails the sends queued on this socket: move them to a new one.
      this.logger.debug('upstream socket error', { error: err.message, code: err.code });
      const stranded = [...ps.pending.values()];
      ps.retired = true;
      this.closeSocket(ps);
      const pool = this.pools[family];
      const slot = pool.indexOf(ps);
      if (slot >= 0) pool[slot] = undefined;
      for (const attempt of stranded) {
        clearTimeout(attempt.timer);
        if (attempt.job.done) continue;
        if (err.code === 'EADDRINUSE' && attempt.job.rebinds++ < 8) {
          attempt.job.attemptsLeft++;
          this.attempt(attempt.job);
        } else if (attempt.job.attemptsLeft > 0) this.attempt(attempt.job);
        else this.finish(attempt.job, undefined, this.failure('network', err.message));
      }
    });
    socket.bind({ port: randomPort(), address: family === 4 ? '0.0.0.0' : '::', exclusive: true });
    socket.unref();
    return ps;
  }

  private closeSocket(ps: PooledSocket): void {
    if (!this.allSockets.delete(ps)) return;
    for (const attempt of ps.pending.values()) clearTimeout(attempt.timer);
    ps.pending.clear();
    try {
      ps.socket.close();
    } catch {
      // already closed
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const jobs = new Set<Job>();
    for (const ps of this.allSockets) for (const a of ps.pending.values()) jobs.add(a.job);
    for (const ps of [...this.allSockets]) this.closeSocket(ps);
    for (const sock of this.tcpSockets) sock.destroy();
    for (const job of jobs) this.finish(job, undefined, this.failure('closed', 'forwarder is closed'));
    this.pools[4] = [];
    this.pools[6] = [];
  }
}

export function createForwarder(opts: ForwarderOptions): Forwarder {
  return new UdpForwarder(opts);
}
