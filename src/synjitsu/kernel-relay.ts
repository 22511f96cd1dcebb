import { close, closeSync } from 'node:fs';
import { endianness } from 'node:os';
import { errorMessage } from '../errors.js';
import { loadNative, type NativeAddon } from '../native/index.js';
import { EbpfAssembler, HELPER } from './ebpf.js';
import type { Tuple } from './nft.js';

/**
 * The relay in the kernel. A handed-over connection lives in two sequence spaces: the client's
 * handshake was with us (our SYN cookie as ISN), the guest's with the guest. Instead of carrying
 * every segment through the daemon, a tc program on the guest's link (tcx ingress: guest -> client,
 * egress: client -> guest) rewrites each segment of a relayed 4-tuple as it passes — sequence or
 * acknowledgement number shifted by a constant, window rescaled, checksum patched incrementally —
 * so the bridge forwards it like any other frame. One hash map holds both directions of every
 * relayed connection; the daemon adds a connection's two entries once the guest has acknowledged
 * everything we buffered (handover.ts) and deletes them when the connection ends (teardown.ts).
 *
 * Every frame the program rewrote carries RELAY_MARK as its skb hash, and the capture's V3 ring
 * reports it (FRAME_KERNEL_RELAYED): the capture sees guest frames after tc ingress, so this is
 * how the daemon tells a copy the kernel already translated from one it must still translate.
 */

/** The map's key: the 4-tuple in network order, as it sits in the IPv4 and TCP headers. */
export const KEY_SIZE = 12;
/** The map's value: seq delta u32, ack delta u32, window shift left u8, right u8, 2 pad (host order). */
export const VALUE_SIZE = 12;

export interface Rewrite {
  /** Added to the sequence number (mod 2^32); 0 leaves it. */
  seqDelta: number;
  /** Added to the acknowledgement number of segments with ACK set. */
  ackDelta: number;
  /** window' = min(0xffff, (window << shiftLeft) >> shiftRight). */
  shiftLeft: number;
  shiftRight: number;
}

export function encodeKey(t: Tuple): Buffer {
  const key = Buffer.alloc(KEY_SIZE);
  key.writeUInt32BE(t.srcIp >>> 0, 0);
  key.writeUInt32BE(t.dstIp >>> 0, 4);
  key.writeUInt16BE(t.srcPort, 8);
  key.writeUInt16BE(t.dstPort, 10);
  return key;
}

export function encodeRewrite(r: Rewrite): Buffer {
  const value = Buffer.alloc(VALUE_SIZE);
  value.writeUInt32LE(r.seqDelta >>> 0, 0);
  value.writeUInt32LE(r.ackDelta >>> 0, 4);
  value[8] = r.shiftLeft & 31;
  value[9] = r.shiftRight & 31;
  return value;
}

// Stack layout of the program (offsets from the frame pointer r10).
const IP_AT = -64; // 20 bytes of IPv4 header
const TCP_AT = -40; // 20 bytes of TCP header
const KEY_AT = -16; // the 12-byte key
const TCX_NEXT = -1;

/** The tc program: rewrite segments of 4-tuples found in the map `mapFd`, leave every other frame alone. */
export function relayProgram(mapFd: number, mark: number): Buffer {
  const a = new EbpfAssembler();
  const SKB = 6;
  const TCP_OFF = 7;
  const VALUE = 8;
  const OLD = 9;
  /** Patches `size` bytes at TCP_OFF + fieldOff from OLD to the value at fp+stackOff (r1 holds it). */
  const patch = (fieldOff: number, stackOff: number, size: 2 | 4): void => {
    a.alu64Reg('mov', 4, 1).alu64Reg('mov', 3, OLD).alu64Reg('mov', 1, SKB).alu64Reg('mov', 2, TCP_OFF).alu64('add', 2, 16).alu64('mov', 5, size);
    a.call(HELPER.l4CsumReplace).jump('jne', 0, 0, 'pass');
    a.alu64Reg('mov', 1, SKB).alu64Reg('mov', 2, TCP_OFF).alu64('add', 2, fieldOff).alu64Reg('mov', 3, 10).alu64('add', 3, stackOff);
    a.alu64('mov', 4, size).alu64('mov', 5, 0).call(HELPER.skbStoreBytes).jump('jne', 0, 0, 'pass');
  };
  const loadBytes = (offReg: 2 | 7, stackOff: number, len: number): void => {
    if (offReg !== 2) a.alu64Reg('mov', 2, offReg);
    a.alu64Reg('mov', 1, SKB).alu64Reg('mov', 3, 10).alu64('add', 3, stackOff).alu64('mov', 4, len);
    a.call(HELPER.skbLoadBytes).jump('jne', 0, 0, 'pass');
  };

  a.alu64Reg('mov', SKB, 1);
  // __sk_buff.protocol (offset 16) is big-endian ETH_P_IP read as a little-endian word.
  a.load(4, 2, SKB, 16).jump('jne', 2, 0x0008, 'pass');
  a.alu64('mov', 2, 14);
  loadBytes(2, IP_AT, 20);
  a.load(1, 2, 10, IP_AT).alu64Reg('mov', 3, 2).alu64('and', 3, 0xf0).jump('jne', 3, 0x40, 'pass');
  a.alu64('and', 2, 0x0f).alu64('lsh', 2, 2).jump('jlt', 2, 20, 'pass');
  a.load(1, 3, 10, IP_AT + 9).jump('jne', 3, 6, 'pass');
  // Fragments (MF set or an offset) are left alone: only a first fragment has the TCP header.
  a.load(2, 3, 10, IP_AT + 6).alu64('and', 3, 0xff3f).jump('jne', 3, 0, 'pass');
  a.alu64Reg('mov', TCP_OFF, 2).alu64('add', TCP_OFF, 14);
  loadBytes(TCP_OFF, TCP_AT, 20);
  a.load(4, 1, 10, IP_AT + 12).store(4, 10, KEY_AT, 1);
  a.load(4, 1, 10, IP_AT + 16).store(4, 10, KEY_AT + 4, 1);
  a.load(4, 1, 10, TCP_AT).store(4, 10, KEY_AT + 8, 1);
  a.loadMap(1, mapFd).alu64Reg('mov', 2, 10).alu64('add', 2, KEY_AT).call(HELPER.mapLookupElem);
  a.jump('jeq', 0, 0, 'pass').alu64Reg('mov', VALUE, 0);

  a.load(4, 2, VALUE, 0).jump('jeq', 2, 0, 'ack');
  a.load(4, OLD, 10, TCP_AT + 4).alu64Reg('mov', 1, OLD).toBigEndian(1, 32).alu64Reg('add', 1, 2).toBigEndian(1, 32);
  a.store(4, 10, TCP_AT + 4, 1);
  patch(4, TCP_AT + 4, 4);

  a.label('ack').load(4, 2, VALUE, 4).jump('jeq', 2, 0, 'window');
  a.load(1, 1, 10, TCP_AT + 13).alu64('and', 1, 0x10).jump('jeq', 1, 0, 'window');
  a.load(4, OLD, 10, TCP_AT + 8).alu64Reg('mov', 1, OLD).toBigEndian(1, 32).alu64Reg('add', 1, 2).toBigEndian(1, 32);
  a.store(4, 10, TCP_AT + 8, 1);
  patch(8, TCP_AT + 8, 4);

  a.label('window').load(1, 2, VALUE, 8).load(1, 3, VALUE, 9);
  a.alu64Reg('mov', 1, 2).alu64Reg('or', 1, 3).jump('jeq', 1, 0, 'mark');
  a.load(2, OLD, 10, TCP_AT + 14).alu64Reg('mov', 1, OLD).toBigEndian(1, 16);
  a.alu64('and', 2, 31).alu64('and', 3, 31).alu64Reg('lsh', 1, 2).alu64Reg('rsh', 1, 3);
  a.jump('jle', 1, 0xffff, 'window-fits').alu64('mov', 1, 0xffff);
  a.label('window-fits').toBigEndian(1, 16).store(2, 10, TCP_AT + 14, 1);
  patch(14, TCP_AT + 14, 2);

  a.label('mark').alu64Reg('mov', 1, SKB).alu64('mov', 2, mark | 0).call(HELPER.setHash);
  a.label('pass').alu64('mov', 0, TCX_NEXT).exit();
  return a.assemble();
}

interface Attached {
  ifindex: number;
  /** The two bpf_link fds (ingress, egress) once attached. */
  links: Promise<number[]>;
}

/** Closing a bpf_link detaches it, which waits for an RCU grace period: never on the event loop. */
function closeInBackground(fd: number): void {
  close(fd, () => undefined);
}

/** The map, the loaded program and its attachments; undefined from open() when the kernel cannot. */
export class KernelRelay {
  private readonly attached = new Map<string, Attached>();

  private constructor(
    private readonly native: NativeAddon,
    private readonly mapFd: number,
    private readonly progFd: number,
  ) {}

  /** Loads the program; returns why not (old kernel, no CAP_BPF, big-endian host, ...) as a string. */
  static open(maxFlows: number): KernelRelay | string {
    if (endianness() !== 'LE') return 'the map values are written little-endian';
    let native: NativeAddon;
    try {
      native = loadNative();
    } catch (err) {
      return errorMessage(err);
    }
    let mapFd = -1;
    try {
      mapFd = native.bpfHashMap(KEY_SIZE, VALUE_SIZE, Math.max(2, maxFlows * 2));
      const progFd = native.bpfLoadTcProgram(relayProgram(mapFd, native.RELAY_MARK), 'jitsu_relay');
      return new KernelRelay(native, mapFd, progFd);
    } catch (err) {
      if (mapFd >= 0) closeSync(mapFd);
      return errorMessage(err);
    }
  }

  /**
   * Attaches the program to both directions of `link`; resolves once it runs there. Idempotent (one
   * attachment per link, shared by every flow), and again for a link re-created under the same name.
   * Rejects when the kernel refuses (no tcx before Linux 6.6).
   */
  attach(link: string): Promise<void> {
    const ifindex = this.native.ifIndex(link);
    const known = this.attached.get(link);
    if (known && known.ifindex === ifindex) return known.links.then(() => undefined);
    if (known) this.detach(link);
    if (ifindex === 0) return Promise.reject(new Error(`no link ${link}`));
    const links = this.native.bpfAttachTcx(this.progFd, ifindex);
    const entry: Attached = { ifindex, links };
    this.attached.set(link, entry);
    links.catch(() => {
      if (this.attached.get(link) === entry) this.attached.delete(link);
    });
    return links.then(() => undefined);
  }

  detach(link: string): void {
    const known = this.attached.get(link);
    if (!known) return;
    this.attached.delete(link);
    known.links.then((fds) => fds.forEach(closeInBackground), () => undefined);
  }

  set(t: Tuple, r: Rewrite): void {
    this.native.bpfMapUpdate(this.mapFd, encodeKey(t), encodeRewrite(r));
  }

  /** False when the entry was not there (deleting is always safe to repeat). */
  delete(t: Tuple): boolean {
    try {
      return this.native.bpfMapDelete(this.mapFd, encodeKey(t));
    } catch {
      // Only a closed map fails otherwise: the entries went with it.
      return false;
    }
  }

  close(): void {
    for (const link of [...this.attached.keys()]) this.detach(link);
    // The links hold the program and the map: they go when the last link is gone.
    closeInBackground(this.progFd);
    closeInBackground(this.mapFd);
  }
}
