/**
 * Classic BPF programs for the capture socket, compiled here so the set of watched IPs can change at
 * run time (setFilter). The kernel drops everything else before it reaches the ring: the daemon
 * never copies unrelated traffic.
 */
const BPF_LD_H_ABS = 0x28;
const BPF_LD_B_ABS = 0x30;
const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JA = 0x05;
const BPF_RET_K = 0x06;

export const SNAPLEN = 0x40000;
/**
 * What is kept of a frame the kernel relay already translated, once no flow needs whole copies:
 * Ethernet + IPv4 + TCP headers with options (the daemon only watches such a flow for its end).
 */
export const HEADER_SNAPLEN = 14 + 60 + 60;
/** Ancillary load of skb->hash (SKF_AD_OFF + SKF_AD_RXHASH). */
const SKF_AD_RXHASH = (-0x1000 + 32) >>> 0;
/** Past this many IPs the per-IP comparisons would overflow 8-bit jump offsets: accept all ARP + TCP. */
export const MAX_FILTERED_IPS = 40;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

function encode(prog: readonly Insn[]): Buffer {
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach((insn, i) => {
    out.writeUInt16LE(insn.code, i * 8);
    out[i * 8 + 2] = insn.jt;
    out[i * 8 + 3] = insn.jf;
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}

/**
 * "ARP whose target is one of `ips`, or IPv4 TCP from or to one of `ips`". An empty list drops all.
 * Offsets assume untagged Ethernet II (bridges hand us untagged frames). With `headersOfMark`, a
 * frame whose skb hash is that mark (translated by the kernel relay) is cut to HEADER_SNAPLEN.
 */
export function watchFilter(ips: readonly number[], headersOfMark?: number): Buffer {
  if (ips.length === 0) return encode([{ code: BPF_RET_K, jt: 0, jf: 0, k: 0 }]);
  const prog: Insn[] = [];
  const fixups: Array<{ at: number; field: 'jt' | 'jf' | 'k'; label: string }> = [];
  const labels = new Map<string, number>();
  const emit = (code: number, k: number, jt: number | string = 0, jf: number | string = 0): void => {
    const at = prog.length;
    prog.push({ code, jt: typeof jt === 'number' ? jt : 0, jf: typeof jf === 'number' ? jf : 0, k });
    if (typeof jt === 'string') fixups.push({ at, field: 'jt', label: jt });
    if (typeof jf === 'string') fixups.push({ at, field: 'jf', label: jf });
  };
  const jump = (label: string): void => {
    fixups.push({ at: prog.length, field: 'k', label });
    prog.push({ code: BPF_JA, jt: 0, jf: 0, k: 0 });
  };
  const filtered = ips.length <= MAX_FILTERED_IPS;

  emit(BPF_LD_H_ABS, 12);
  emit(BPF_JEQ_K, 0x0806, 'arp', 0);
  emit(BPF_JEQ_K, 0x0800, 'ip', 'drop');
  labels.set('arp', prog.length);
  if (filtered) {
    emit(BPF_LD_W_ABS, 38);
    for (const ip of ips) emit(BPF_JEQ_K, ip, 'accept', 0);
    jump('drop');
  } else {
    jump('accept');
  }
  labels.set('ip', prog.length);
  emit(BPF_LD_B_ABS, 23);
  emit(BPF_JEQ_K, 6, 0, 'drop');
  if (filtered) {
    emit(BPF_LD_W_ABS, 30);
    for (const ip of ips) emit(BPF_JEQ_K, ip, 'accept', 0);
    emit(BPF_LD_W_ABS, 26);
    for (const ip of ips) emit(BPF_JEQ_K, ip, 'accept', 0);
  } else {
    jump('accept');
  }
  labels.set('drop', prog.length);
  emit(BPF_RET_K, 0);
  labels.set('accept', prog.length);
  if (headersOfMark !== undefined) {
    emit(BPF_LD_W_ABS, SKF_AD_RXHASH);
    emit(BPF_JEQ_K, headersOfMark >>> 0, 0, 1);
    emit(BPF_RET_K, HEADER_SNAPLEN);
  }
  emit(BPF_RET_K, SNAPLEN);

  for (const f of fixups) {
    const target = labels.get(f.label)!;
    const rel = target - f.at - 1;
    if (f.field === 'k') prog[f.at]!.k = rel;
    else {
      if (rel > 255) throw new RangeError(`BPF jump too long (${rel}); lower MAX_FILTERED_IPS`);
      prog[f.at]![f.field] = rel;
    }
  }
  return encode(prog);
}

/** Runs a classic BPF program over a frame (tests only: proves the program means what we think). */
export function runFilter(program: Buffer, frame: Buffer, skbHash = 0): number {
  let a = 0;
  let pc = 0;
  const n = program.length / 8;
  while (pc < n) {
    const code = program.readUInt16LE(pc * 8);
    const jt = program[pc * 8 + 2]!;
    const jf = program[pc * 8 + 3]!;
    const k = program.readUInt32LE(pc * 8 + 4);
    pc++;
    switch (code) {
      case BPF_LD_H_ABS:
        if (k + 2 > frame.length) return 0;
        a = frame.readUInt16BE(k);
        break;
      case BPF_LD_B_ABS:
        if (k + 1 > frame.length) return 0;
        a = frame[k]!;
        break;
      case BPF_LD_W_ABS:
        if (k === SKF_AD_RXHASH) {
          a = skbHash >>> 0;
          break;
        }
        if (k + 4 > frame.length) return 0;
        a = frame.readUInt32BE(k);
        break;
      case BPF_JEQ_K:
        pc += a === k ? jt : jf;
        break;
      case BPF_JA:
        pc += k;
        break;
      case BPF_RET_K:
        return k;
      default:
        throw new Error(`unsupported BPF opcode ${code}`);
    }
  }
  return 0;
}
