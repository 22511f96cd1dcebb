/**
 * DNS listeners: UDP and TCP on every bind address, one port for all.
 *
 * UDP, native path (default when the addon loads): a batched socket (src/native/udp.ts) drains
 * up to 64 datagrams per wake-up with recvmmsg, the handler answers each synchronously where it
 * can, and the batch's replies leave with one sendmmsg; late replies (summons, forwards) go out
 * one by one to a copied address key. Fallback (no addon, or `udp: 'dgram'`): Node's dgram, one
 * datagram in, at most one out, with a synchronous address "lookup" so no extra tick. TCP (RFC 7766): 2-byte length
 * framing, many queries per connection, pipelined and answered out of order as they complete;
 * idle timeout, a cap on connections, on frame size and on queries in flight per connection
 * (reading pauses at the cap). A bad frame closes that connection only.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { MetricsRegistry } from '../observe/metrics.js';
import { HEADER_SIZE, MAX_MESSAGE_SIZE } from './constants.js';
import {
  batchedUdpAvailable,
  openBatchedUdp,
  UDP_ADDR_STRIDE,
  UDP_TRUNCATED,
  type BatchedUdp,
  type UdpSocketStats,
} from '../native/udp.js';
import { DnsMetrics } from './metrics.js';
import { sourceFromText, type QuerySource } from './source.js';
import type { DnsHandler } from './types.js';

export interface TcpLimits {
  /** Close a connection with no query in flight after this long without traffic. Default 10 s. */
  idleTimeoutMs?: number;
  /** Concurrent connections across all TCP listeners. Default 256. */
  maxConnections?: number;
  /** Largest query frame accepted (<= 65535). Default 65535. */
  maxMessageSize?: number;
  /** Queries in flight per connection before reading pauses. Default 64. */
  maxPipelined?: number;
}

export interface DnsServerOptions {
  /** IPv4 and/or IPv6 literals, e.g. ['127.0.0.1', '::1']. */
  addresses: readonly string[];
  /** 0 picks a free port (the same one for every listener). */
  port: number;
  handler: DnsHandler;
  logger: Logger;
  metrics: MetricsRegistry;
  tcp?: TcpLimits;
  /** SO_RCVBUF for UDP sockets; absorbs bursts. Default 4 MiB (capped by net.core.rmem_max). */
  udpReceiveBuffer?: number;
  /**
   * In a `node:cluster` worker: bind non-exclusively, so every worker shares the primary's
   * sockets (the kernel hands each datagram to one of the workers reading it). Default false.
   */
  clusterShared?: boolean;
  /**
   * UDP implementation. 'auto' (default): the native batched socket when the addon loads, else
   * dgram (the reason is logged at warn). 'native': fail if the addon is missing. 'dgram': Node's.
   */
  udp?: 'auto' | 'native' | 'dgram';
  /**
   * SO_REUSEPORT on the native UDP sockets, so several threads/processes each bind their own
   * socket on the same (fixed) port. Default false. Implied by `clusterShared` on the native path.
   */
  reusePort?: boolean;
  /** Native path: datagrams per recvmmsg/sendmmsg. Default 64. */
  udpBatch?: number;
  /** Native path: largest UDP query accepted; larger ones are dropped and counted. Default 4096. */
  udpMaxQuery?: number;
}

export interface BoundAddress {
  transport: 'udp' | 'tcp';
  family: 4 | 6;
  address: string;
  port: number;
}

export interface DnsServer {
  readonly port: number;
  /** Which UDP implementation serves: 'native' (batched recvmmsg/sendmmsg) or 'dgram'. */
  readonly udpPath: 'native' | 'dgram';
  /** Native path: counters summed over the UDP sockets (batches, drops, send queue); undefined on dgram. */
  udpStats(): UdpSocketStats | undefined;
  addresses(): BoundAddress[];
  close(): Promise<void>;
}

type LookupCallback = (err: Error | null, address: string, family: number) => void;

/**
 * Replies go to the literal address a query came from, in the socket's own family: no resolver,
 * no address parsing, no extra tick.
 */
function literalLookup(family: 4 | 6): (address: string, _family: unknown, callback: LookupCallback) => void {
  return (address, _family, callback) => callback(null, address, family);
}

function familyOf(address: string): 4 | 6 {
  const f = net.isIP(address);
  if (f === 0) throw new Error(`DNS bind address ${JSON.stringify(address)} is not an IP literal`);
  return f as 4 | 6;
}

class Server implements DnsServer {
  port = 0;
  udpPath: 'native' | 'dgram' = 'dgram';
  private readonly udp: dgram.Socket[] = [];
  private readonly batched: BatchedUdp[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly connections = new Set<net.Socket>();
  private readonly metrics: DnsMetrics;
  private readonly idleTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly maxMessageSize: number;
  private readonly maxPipelined: number;
  private closed = false;

  constructor(private readonly opts: DnsServerOptions) {
    this.metrics = new DnsMetrics(opts.metrics);
    this.idleTimeoutMs = opts.tcp?.idleTimeoutMs ?? 10_000;
    this.maxConnections = opts.tcp?.maxConnections ?? 256;
    this.maxMessageSize = Math.min(MAX_MESSAGE_SIZE, opts.tcp?.maxMessageSize ?? MAX_MESSAGE_SIZE);
    this.maxPipelined = opts.tcp?.maxPipelined ?? 64;
    this.metrics.tcpConnections.labels().collect = () => this.connections.size;
    this.metrics.udpSendQueued.labels().collect = () => this.udpStats()?.queued ?? 0;
  }

  udpStats(): UdpSocketStats | undefined {
    if (this.udpPath !== 'native') return undefined;
    const sum: UdpSocketStats = { received: 0, batches: 0, truncated: 0, sent: 0, queuedTotal: 0, queued: 0, dropped: 0, sendErrors: 0, recvErrors: 0 };
    for (const b of this.batched) {
      const st = b.socket.stats();
      for (const k of Object.keys(sum) as (keyof UdpSocketStats)[]) sum[k] += st[k];
    }
    return sum;
  }

  addresses(): BoundAddress[] {
    const out: BoundAddress[] = [];
    for (const s of this.udp) {
      const a = s.address();
      out.push({ transport: 'udp', family: a.family === 'IPv6' ? 6 : 4, address: a.address, port: a.port });
    }
    for (const b of this.batched) {
      const a = b.socket.localAddress();
      out.push({ transport: 'udp', family: a.family, address: a.address, port: a.port });
    }
    for (const s of this.tcp) {
      const a = s.address() as net.AddressInfo;
      out.push({ transport: 'tcp', family: a.family === 'IPv6' ? 6 : 4, address: a.address, port: a.port });
    }
    return out;
  }

  async listen(): Promise<void> {
    const { addresses } = this.opts;
    if (addresses.length === 0) throw new Error('DNS server needs at least one bind address');
    for (const a of addresses) familyOf(a);
    this.udpPath = this.chooseUdpPath();
    const capped = receiveBufferCap(this.receiveBuffer());
    if (capped) this.opts.logger.info('dns: net.core.rmem_max caps the UDP receive buffer: a burst beyond it is dropped by the kernel', capped);
    // With port 0 the first listener picks the port; a clash on another listener retries anew.
    for (let tries = 0; ; tries++) {
      try {
        let port = this.opts.port;
        for (const address of addresses) {
          port = await this.bindUdp(address, port);
          this.port = port;
        }
        for (const address of addresses) await this.bindTcp(address, port);
        return;
      } catch (err) {
        await this.closeListeners();
        const code = (err as NodeJS.ErrnoException).code;
        if (this.opts.port !== 0 || code !== 'EADDRINUSE' || tries >= 8) throw err;
      }
    }
  }

  private chooseUdpPath(): 'native' | 'dgram' {
    const want = this.opts.udp ?? 'auto';
    if (want === 'dgram') return 'dgram';
    let reason: string | undefined;
    if (this.opts.clusterShared && this.opts.port === 0) reason = 'cluster workers sharing port 0 need the primary\'s dgram socket';
    else if (!batchedUdpAvailable()) reason = 'native addon with UdpSocket not loadable (run `npm run build:native`)';
    if (reason === undefined) return 'native';
    if (want === 'native') throw new Error(`DNS server: native UDP requested but ${reason}`);
    this.opts.logger.warn('dns: UDP falls back to node:dgram (one syscall pair per query)', { reason });
    return 'dgram';
  }

  private receiveBuffer(): number {
    return this.opts.udpReceiveBuffer ?? 4 * 1024 * 1024;
  }

  private bindUdp(address: string, port: number): Promise<number> {
    if (this.udpPath === 'native') return Promise.resolve(this.bindNativeUdp(address, port));
    const family = familyOf(address);
    const sock = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: family === 6,
      recvBufferSize: this.receiveBuffer(),
      lookup: literalLookup(family) as unknown as dgram.SocketOptions['lookup'],
    });
    this.udp.push(sock);
    return new Promise<number>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      sock.once('error', onError);
      sock.bind({ address, port, exclusive: !this.opts.clusterShared }, () => {
        sock.off('error', onError);
        sock.on('error', (err) => this.opts.logger.warn('dns udp socket error', { address, error: err.message }));
        this.serveUdp(sock);
        resolve(sock.address().port);
      });
    });
  }

  private serveUdp(sock: dgram.Socket): void {
    const handler = this.opts.handler;
    const logger = this.opts.logger;
    sock.on('message', (msg, rinfo) => {
      let reply: Buffer | null | Promise<Buffer | null>;
      try {
        reply = handler.handle(msg, 'udp', sourceFromText(rinfo.address));
      } catch (err) {
        logger.error('dns handler threw', { error: errorMessage(err) });
        return;
      }
      if (reply === null) return;
      if (reply instanceof Uint8Array) {
        sock.send(reply, rinfo.port, rinfo.address);
        return;
      }
      const { port, address } = rinfo;
      reply.then(
        (r) => {
          if (r !== null && !this.closed) sock.send(r, port, address);
        },
        (err: unknown) => logger.error('dns handler failed', { error: errorMessage(err) }),
      );
    });
  }

  /**
   * One batched socket: each wake-up delivers up to `batch` datagrams; replies available at once
   * are packed into outData and leave together with one sendmmsg at the end of the batch.
   * Datagram views are valid only during the handler call (the handler copies what it keeps).
   */
  private bindNativeUdp(address: string, port: number): number {
    const handler = this.opts.handler;
    const logger = this.opts.logger;
    const metrics = this.metrics;
    let b: BatchedUdp;
    // The sender of datagram i is the raw sockaddr at i * UDP_ADDR_STRIDE in addrs: one reused view.
    const source: QuerySource = { bytes: new Uint8Array(0), offset: 0, receivedAt: 0 };
    const onBatch = (count: number): void => {
      const { socket, meta, outData, outMeta, addrs, slotSize } = b;
      source.bytes = addrs;
      source.receivedAt = performance.now();
      const arena = b.data.buffer;
      const base = b.data.byteOffset;
      const outCap = outData.length;
      let replies = 0;
      let used = 0;
      for (let i = 0; i < count; i++) {
        if ((meta[2 * i + 1]! & UDP_TRUNCATED) !== 0) {
          metrics.udpOversized.inc();
          continue;
        }
        const msg = Buffer.from(arena, base + i * slotSize, meta[2 * i]!);
        let reply: Buffer | null | Promise<Buffer | null>;
        source.offset = i * UDP_ADDR_STRIDE;
        try {
          reply = handler.handle(msg, 'udp', source);
        } catch (err) {
          logger.error('dns handler threw', { error: errorMessage(err) });
          continue;
        }
        if (reply === null) continue;
        if (reply instanceof Uint8Array) {
          if (reply.length > outCap) {
            // Cannot happen with the default 64 KiB outData; kept so a smaller one never throws.
            if (!socket.sendTo(reply, addrs.subarray(i * UDP_ADDR_STRIDE, (i + 1) * UDP_ADDR_STRIDE))) metrics.udpSendDropped.inc();
            continue;
          }
          if (used + reply.length > outCap) {
            const dropped = socket.sendBatch(replies);
            if (dropped !== 0) metrics.udpSendDropped.inc(dropped);
            replies = 0;
            used = 0;
          }
          outData.set(reply, used);
          outMeta[3 * replies] = used;
          outMeta[3 * replies + 1] = reply.length;
          outMeta[3 * replies + 2] = i;
          replies++;
          used += reply.length;
          continue;
        }
        const key = Buffer.from(addrs.subarray(i * UDP_ADDR_STRIDE, (i + 1) * UDP_ADDR_STRIDE));
        reply.then(
          (r) => {
            if (r !== null && !this.closed && !socket.sendTo(r, key)) metrics.udpSendDropped.inc();
          },
          (err: unknown) => logger.error('dns handler failed', { error: errorMessage(err) }),
        );
      }
      if (replies > 0) {
        const dropped = socket.sendBatch(replies);
        if (dropped !== 0) metrics.udpSendDropped.inc(dropped);
      }
    };
    const opts: Parameters<typeof openBatchedUdp>[0] = {
      address,
      port,
      reusePort: this.opts.reusePort === true || this.opts.clusterShared === true,
      recvBuffer: this.receiveBuffer(),
      onBatch,
    };
    if (this.opts.udpBatch !== undefined) opts.batch = this.opts.udpBatch;
    if (this.opts.udpMaxQuery !== undefined) opts.slotSize = this.opts.udpMaxQuery;
    b = openBatchedUdp(opts);
    this.batched.push(b);
    return b.socket.localAddress().port;
  }

  private bindTcp(address: string, port: number): Promise<void> {
    const family = familyOf(address);
    const server = net.createServer({ noDelay: true }, (sock) => this.serveTcp(sock));
    this.tcp.push(server);
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host: address, port, ipv6Only: family === 6, exclusive: !this.opts.clusterShared }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.opts.logger.warn('dns tcp listener error', { address, error: err.message }));
        resolve();
      });
    });
  }

  private serveTcp(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    // The cap spans all listeners (net.Server.maxConnections would count per listener).
    if (this.connections.size >= this.maxConnections) {
      this.metrics.tcpRejected.inc();
      sock.destroy();
      return;
    }
    // Gone before we looked (reset right after the handshake): nothing to answer.
    if (sock.remoteAddress === undefined) {
      sock.destroy();
      return;
    }
    const source = sourceFromText(sock.remoteAddress);
    this.connections.add(sock);
    const handler = this.opts.handler;
    let inFlight = 0;
    let writeBlocked = false;
    let paused = false;

    const flow = (): void => {
      const shouldPause = writeBlocked || inFlight >= this.maxPipelined;
      if (shouldPause && !paused) sock.pause();
      else if (!shouldPause && paused) sock.resume();
      paused = shouldPause;
    };
    const send = (reply: Buffer): void => {
      if (sock.destroyed) return;
      const frame = Buffer.allocUnsafe(2 + reply.length);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      if (!sock.write(frame)) {
        writeBlocked = true;
        flow();
      }
    };
    const reject = (): void => {
      this.metrics.tcpRejected.inc();
      sock.destroy();
    };

    sock.on('drain', () => {
      writeBlocked = false;
      flow();
    });
    sock.setTimeout(this.idleTimeoutMs);
    sock.on('timeout', () => {
      // RFC 7766 6.2.3: keep the connection while an answer is still owed.
      if (inFlight > 0) sock.setTimeout(this.idleTimeoutMs);
      else reject();
    });
    // Bytes of an incomplete frame; joined only once enough has arrived to make progress, so a
    // frame trickling in byte by byte costs one copy, not one per byte.
    let carry: Buffer[] = [];
    let carryLength = 0;
    let need = 2;
    sock.on('data', (chunk: Buffer) => {
      source.receivedAt = performance.now();
      let buf = chunk;
      if (carryLength > 0) {
        carry.push(chunk);
        carryLength += chunk.length;
        if (carryLength < need) return;
        buf = Buffer.concat(carry, carryLength);
        carry = [];
        carryLength = 0;
      }
      let off = 0;
      need = 2;
      while (buf.length - off >= 2) {
        const len = (buf[off]! << 8) | buf[off + 1]!;
        if (len < HEADER_SIZE || len > this.maxMessageSize) {
          this.metrics.malformed.tcp.inc();
          reject();
          return;
        }
        if (buf.length - off - 2 < len) {
          need = 2 + len;
          break;
        }
        const msg = buf.subarray(off + 2, off + 2 + len);
        off += 2 + len;
        let reply: Buffer | null | Promise<Buffer | null>;
        try {
          reply = handler.handle(msg, 'tcp', source);
        } catch (err) {
          this.opts.logger.error('dns handler threw', { error: errorMessage(err) });
          reply = null;
        }
        if (reply === null) {
          // Malformed or not a query: nothing to answer; the stream can no longer be trusted.
          reject();
          return;
        }
        if (reply instanceof Uint8Array) {
          send(reply);
          continue;
        }
        inFlight++;
        flow();
        reply.then(
          (r) => {
            inFlight--;
            if (r !== null) send(r);
            flow();
          },
          (err: unknown) => {
            inFlight--;
            this.opts.logger.error('dns handler failed', { error: errorMessage(err) });
            flow();
          },
        );
      }
      if (off < buf.length) {
        // Copy the tail so a large chunk is not kept alive by a few bytes.
        const rest = Buffer.from(buf.subarray(off));
        carry = [rest];
        carryLength = rest.length;
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.connections.delete(sock));
  }

  private async closeListeners(): Promise<void> {
    for (const b of this.batched.splice(0)) b.socket.close();
    const udp = this.udp.splice(0);
    const tcp = this.tcp.splice(0);
    await Promise.all([
      ...udp.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
      ...tcp.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))),
    ]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const sock of this.connections) sock.destroy();
    await this.closeListeners();
  }
}

export async function createDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const server = new Server(opts);
  await server.listen();
  return server;
}

/**
 * Whether net.core.rmem_max cuts an SO_RCVBUF request short (the kernel grants at most twice
 * rmem_max, half of it for its own overhead). Slow boards matter here: a small datagram costs
 * ~700 bytes of buffer, so a default rmem_max (176 KiB on the emulated ARM board) holds about 500
 * queries, and a CPU that drains the socket late drops the rest of a burst. Undefined when the
 * request is granted (or the limit cannot be read).
 */
export function receiveBufferCap(requested: number, rmemMaxText = readRmemMax()): { requested_bytes: number; rmem_max: number; fix: string } | undefined {
  const max = Number(rmemMaxText?.trim());
  if (!Number.isInteger(max) || max <= 0 || max >= requested) return undefined;
  return { requested_bytes: requested, rmem_max: max, fix: `sysctl -w net.core.rmem_max=${requested}` };
}

function readRmemMax(): string | undefined {
  try {
    return readFileSync('/proc/sys/net/core/rmem_max', 'utf8');
  } catch {
    return undefined;
  }
}
