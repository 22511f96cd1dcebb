/**
 * Typed loader for the addon's batched UDP socket (native/udp.cc): one readable wake-up drains
 * up to `batch` datagrams with recvmmsg and calls `onBatch(count)` once; replies placed in
 * `outData`/`outMeta` leave with one sendmmsg (`sendBatch`). Memory is allocated once here and
 * shared with the native side; nothing is allocated per datagram.
 */
import { JitsuError } from '../errors.js';
import { loadNative } from './index.js';

/** Bytes per sender address in `addrs` (a raw sockaddr_in / sockaddr_in6, zero-padded). */
export const UDP_ADDR_STRIDE = 32;
/** Set in a datagram's flags word (meta[2 * i + 1]) when it was larger than a slot (payload cut). */
export const UDP_TRUNCATED = 1;

export interface UdpSocketStats {
  received: number;
  batches: number;
  /** Datagrams larger than a slot (delivered flagged, never answered). */
  truncated: number;
  sent: number;
  /** Datagrams that met a full socket buffer and waited in the send queue (total). */
  queuedTotal: number;
  /** Datagrams waiting in the send queue now. */
  queued: number;
  /** Datagrams dropped because the send queue was full. */
  dropped: number;
  /** Datagrams the kernel refused (ENOBUFS, EPERM, EINVAL...): dropped. */
  sendErrors: number;
  recvErrors: number;
}

export interface LocalAddress {
  address: string;
  port: number;
  family: 4 | 6;
}

/** The raw native object; use `openBatchedUdp` rather than constructing it. */
export interface NativeUdpSocket {
  readonly fd: number;
  /** outMeta holds [offset, length, slot] per reply; returns how many were dropped. */
  sendBatch(count: number): number;
  /** A late reply to the sender whose address key (UDP_ADDR_STRIDE bytes from `addrs`) is given; false if dropped. */
  sendTo(data: Uint8Array, key: Uint8Array): boolean;
  stats(): UdpSocketStats;
  localAddress(): LocalAddress;
  ref(): void;
  unref(): void;
  close(): void;
}

interface NativeUdpOptions {
  address: string;
  port: number;
  reusePort?: boolean;
  recvBuffer?: number;
  sendBuffer?: number;
  maxQueued?: number;
  slotSize: number;
  data: Buffer;
  meta: Uint32Array;
  addrs: Buffer;
  outData: Buffer;
  outMeta: Uint32Array;
  onBatch: (count: number) => void;
}

interface UdpAddon {
  readonly UdpSocket?: new (options: NativeUdpOptions) => NativeUdpSocket;
}

export interface BatchedUdpOptions {
  /** IPv4 or IPv6 literal (IPv6 sockets are v6-only). */
  address: string;
  /** 0 picks a free port. */
  port: number;
  /** SO_REUSEPORT: several sockets (threads, processes) share the port; the kernel spreads senders. */
  reusePort?: boolean;
  /** SO_RCVBUF request (capped by net.core.rmem_max). */
  recvBuffer?: number;
  /** SO_SNDBUF request; the kernel default when unset. */
  sendBuffer?: number;
  /** Datagrams per recvmmsg/sendmmsg. Default 64. */
  batch?: number;
  /** Largest datagram received whole; larger ones arrive flagged UDP_TRUNCATED. Default 4096. */
  slotSize?: number;
  /** Bytes of replies per sendBatch. Default 65536 (any datagram fits after a flush). */
  outBytes?: number;
  /** Replies waiting for a full socket buffer to drain; beyond this they are dropped. Default 1024. */
  maxQueued?: number;
  /** Called once per received batch; datagram i is `data[i * slotSize, + meta[2 * i])`. */
  onBatch: (count: number) => void;
}

export interface BatchedUdp {
  readonly socket: NativeUdpSocket;
  readonly batch: number;
  readonly slotSize: number;
  /** Received payloads, datagram i at i * slotSize. */
  readonly data: Buffer;
  /** [length, flags] per received datagram. */
  readonly meta: Uint32Array;
  /** Sender of datagram i at i * UDP_ADDR_STRIDE. */
  readonly addrs: Buffer;
  /** Replies for sendBatch. */
  readonly outData: Buffer;
  /** [offset, length, slot] per reply. */
  readonly outMeta: Uint32Array;
}

/** True when the loaded addon has the batched UDP socket. */
export function batchedUdpAvailable(): boolean {
  try {
    return typeof (loadNative() as unknown as UdpAddon).UdpSocket === 'function';
  } catch {
    return false;
  }
}

/**
 * Opens and binds a batched UDP socket polled on this thread's event loop (works in worker
 * threads). Bind failures keep the OS code (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`) on `err.code`.
 * Throws NATIVE_UNAVAILABLE when the addon is missing or predates UdpSocket.
 */
export function openBatchedUdp(opts: BatchedUdpOptions): BatchedUdp {
  const addon = loadNative() as unknown as UdpAddon;
  if (typeof addon.UdpSocket !== 'function') {
    throw new JitsuError('NATIVE_UNAVAILABLE', 'native addon has no UdpSocket (stale build): run `npm run build:native`');
  }
  const batch = opts.batch ?? 64;
  const slotSize = opts.slotSize ?? 4096;
  if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new RangeError(`batch must be 1..1024, got ${batch}`);
  if (!Number.isInteger(slotSize) || slotSize < 12 || slotSize > 65536) throw new RangeError(`slotSize must be 12..65536, got ${slotSize}`);
  const data = Buffer.alloc(batch * slotSize);
  const meta = new Uint32Array(batch * 2);
  const addrs = Buffer.alloc(batch * UDP_ADDR_STRIDE);
  const outData = Buffer.alloc(Math.max(opts.outBytes ?? 65536, 512));
  const outMeta = new Uint32Array(batch * 3);
  const native: NativeUdpOptions = {
    address: opts.address,
    port: opts.port,
    slotSize,
    data,
    meta,
    addrs,
    outData,
    outMeta,
    onBatch: opts.onBatch,
  };
  if (opts.reusePort) native.reusePort = true;
  if (opts.recvBuffer !== undefined) native.recvBuffer = opts.recvBuffer;
  if (opts.sendBuffer !== undefined) native.sendBuffer = opts.sendBuffer;
  if (opts.maxQueued !== undefined) native.maxQueued = opts.maxQueued;
  const socket = new addon.UdpSocket(native);
  return { socket, batch, slotSize, data, meta, addrs, outData, outMeta };
}
