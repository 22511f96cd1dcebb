import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JitsuError } from '../errors.js';

/**
 * Receive ring geometry. Version 2 wakes the reader per frame: lowest latency when quiet, but few
 * (64 KiB) slots, so bursts overflow it. Version 3 (default) packs frames into blocks handed over when full or after timeoutMs (rounded up to a
 * jiffy: 4 ms at HZ=250): cheaper at high rates, slower when quiet. blockSize: a multiple of the
 * page size; frameSize: a multiple of 16 (V2: large enough for a 64 KiB GSO frame, the default).
 */
export interface RingOptions {
  version?: 2 | 3;
  blockSize?: number;
  blockCount?: number;
  frameSize?: number;
  /** How long (ms) the kernel waits before handing a partly filled block to us: the latency bound at low rates. */
  timeoutMs?: number;
}

export interface PacketSocketOptions {
  /** Interface to bind to (bridge, veth, tap). */
  iface: string;
  /** Open the receive ring and poll it; false makes a send-only socket that queues nothing. */
  receive?: boolean;
  promisc?: boolean;
  /** Do not deliver frames the host itself sends on this interface (PACKET_IGNORE_OUTGOING). */
  ignoreOutgoing?: boolean;
  /** Classic BPF program (8 bytes per instruction), attached before bind. */
  filter?: Buffer;
  ring?: RingOptions;
  /** Receive batch buffer, reused for every batch. */
  data?: Buffer;
  /** Receive batch descriptors: [offset, length, pktType | FRAME_TRUNCATED | FRAME_KERNEL_RELAYED] per frame. */
  meta?: Uint32Array;
  /** Called once per batch with the number of frames described in meta. */
  onBatch?: (count: number) => void;
}

export interface PacketStats {
  packets: number;
  drops: number;
  freezes: number;
}

export interface PacketSocket {
  readonly fd: number;
  readonly ifindex: number;
  /** Sends `count` frames described by [offset, length] pairs in meta; returns how many were sent. */
  send(data: Buffer, meta: Uint32Array, count: number): number;
  /** Replaces the BPF filter atomically. */
  setFilter(program: Buffer): void;
  /** Cumulative ring counters (the kernel's are reset on read; this accumulates). */
  stats(): PacketStats;
  close(): void;
}

/** A pidfd on one process; `onExit` runs once, in the loop turn after the process exits. */
export interface PidWatch {
  readonly fd: number;
  close(): void;
}

export interface NativeAddon {
  readonly version: number;
  readonly PacketSocket: new (options: PacketSocketOptions) => PacketSocket;
  /** Throws (errno text) when the pid does not exist (ESRCH) or pidfds are unsupported. */
  readonly PidWatch: new (pid: number, onExit: () => void) => PidWatch;
  ifIndex(name: string): number;
  /**
   * Sends one datagram to an AF_UNIX SOCK_DGRAM socket (a leading '@' is the abstract namespace);
   * returns the bytes sent. Non-blocking: throws (errno text, `errno` set) on EAGAIN and every other error.
   */
  unixDgramSend(path: string, data: Buffer): number;
  /** The skb hash the kernel relay's program sets on frames it rewrote (src/synjitsu/kernel-relay.ts). */
  readonly RELAY_MARK: number;
  /** bpf(2) for the kernel relay; each returns an fd (close with fs.closeSync) or throws with errno's text. */
  bpfHashMap(keySize: number, valueSize: number, maxEntries: number): number;
  /** A tc (sched_cls) program; a verifier rejection's log is in the error message. */
  bpfLoadTcProgram(instructions: Buffer, name: string): number;
  /**
   * bpf_links on the link's tcx ingress and egress ([ingress, egress] fds; each detaches when closed).
   * Runs on the thread pool: the kernel waits for an RCU grace period per attachment.
   */
  bpfAttachTcx(progFd: number, ifindex: number): Promise<number[]>;
  bpfMapUpdate(mapFd: number, key: Buffer, value: Buffer): void;
  /** False when the key was not in the map. */
  bpfMapDelete(mapFd: number, key: Buffer): boolean;
  /** Runs a tc program once on a copy of `frame` (BPF_PROG_TEST_RUN): its verdict and the frame it left. */
  bpfTestRun(progFd: number, frame: Buffer): { result: number; frame: Buffer };
  /**
   * Netlink requests on one socket of `protocol` opened in the network namespace at `nsPath` (null:
   * the thread's own): the raw replies to each, read up to the message that ends it (src/network/netlink.ts).
   */
  netlinkTransact(protocol: number, nsPath: string | null, requests: Buffer[]): Buffer[];
  /** if_nametoindex(3) in the thread's own network namespace: 0 when there is no such link. */
  linkIndex(name: string): number;
}

/** Set in a frame's third meta word when the frame did not fit a ring slot (payload incomplete). */
export const FRAME_TRUNCATED = 0x100;
/** Set when the frame carries RELAY_MARK: the kernel relay already translated it (V3 rings only). */
export const FRAME_KERNEL_RELAYED = 0x200;

/** sll_pkttype values delivered in batch meta (low byte of the third word). */
export const PKT_HOST = 0;
export const PKT_BROADCAST = 1;
export const PKT_MULTICAST = 2;
export const PKT_OTHERHOST = 3;
export const PKT_OUTGOING = 4;

let cached: NativeAddon | undefined;

function findAddon(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  // src/native (tsx/vitest) or dist/src/native (compiled): walk up to the package root.
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'jitsu_native.node');
    if (existsSync(candidate)) return candidate;
    dir = resolve(dir, '..');
  }
  return undefined;
}

/** Loads build/Release/jitsu_native.node once; throws NATIVE_UNAVAILABLE with the fix when missing. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = findAddon();
  if (!path) {
    throw new JitsuError(
      'NATIVE_UNAVAILABLE',
      'native addon build/Release/jitsu_native.node not found: build it with `npx node-gyp rebuild` (needs build-essential and python3)',
    );
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(path) as NativeAddon;
    if (typeof addon.PacketSocket !== 'function' || typeof addon.PidWatch !== 'function') {
      throw new Error('addon lacks PacketSocket or PidWatch (stale build?)');
    }
    cached = addon;
    return addon;
  } catch (err) {
    throw new JitsuError(
      'NATIVE_UNAVAILABLE',
      `native addon ${path} failed to load: rebuild it with \`npx node-gyp rebuild\` (${err instanceof Error ? err.message : String(err)})`,
      { path },
      { cause: err },
    );
  }
}

/** True when the addon loads; for tests that must skip with a reason. */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}
