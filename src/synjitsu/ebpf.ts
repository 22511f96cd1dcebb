/**
 * A small eBPF assembler: just the instructions the kernel relay's tc program uses (kernel-relay.ts),
 * with labels resolved at assemble(). Like bpf.ts for the capture's classic filter, the program is
 * built here rather than compiled, so the daemon needs no compiler and the map fd is a plain
 * instruction operand.
 */

export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
export type Size = 1 | 2 | 4;

const CLASS_LD = 0x00;
const CLASS_LDX = 0x01;
const CLASS_STX = 0x03;
const CLASS_ALU = 0x04;
const CLASS_JMP = 0x05;
const CLASS_ALU64 = 0x07;
const MODE_MEM = 0x60;
const MODE_IMM = 0x00;
const SRC_K = 0x00;
const SRC_X = 0x08;
const SIZE: Record<Size, number> = { 1: 0x10, 2: 0x08, 4: 0x00 };
const SIZE_DW = 0x18;
const PSEUDO_MAP_FD = 1;

export const ALU = { add: 0x00, sub: 0x10, or: 0x40, and: 0x50, lsh: 0x60, rsh: 0x70, mov: 0xb0 } as const;
export const JMP = { jeq: 0x10, jne: 0x50, jlt: 0xa0, jle: 0xb0 } as const;
const OP_JA = 0x00;
const OP_CALL = 0x80;
const OP_EXIT = 0x90;
const OP_END_TO_BE = 0xd0 | 0x08;

/** Helper ids (include/uapi/linux/bpf.h, __BPF_FUNC_MAPPER order). */
export const HELPER = { mapLookupElem: 1, skbStoreBytes: 9, l4CsumReplace: 11, skbLoadBytes: 26, setHash: 48 } as const;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** Jump target, resolved into `off` by assemble(). */
  label?: string;
}

export class EbpfAssembler {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();

  private push(code: number, dst: number, src: number, off: number, imm: number, label?: string): this {
    this.insns.push({ code, dst, src, off, imm, ...(label === undefined ? {} : { label }) });
    return this;
  }

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`ebpf: label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
    return this;
  }

  alu64(op: keyof typeof ALU, dst: Reg, imm: number): this {
    return this.push(CLASS_ALU64 | ALU[op] | SRC_K, dst, 0, 0, imm);
  }

  alu64Reg(op: keyof typeof ALU, dst: Reg, src: Reg): this {
    return this.push(CLASS_ALU64 | ALU[op] | SRC_X, dst, src, 0, 0);
  }

  /** dst = dst converted between host order and big-endian (a byte swap on little-endian hosts); zero-extends. */
  toBigEndian(dst: Reg, bits: 16 | 32): this {
    return this.push(CLASS_ALU | OP_END_TO_BE, dst, 0, 0, bits);
  }

  load(size: Size, dst: Reg, base: Reg, off: number): this {
    return this.push(CLASS_LDX | MODE_MEM | SIZE[size], dst, base, off, 0);
  }

  store(size: Size, base: Reg, off: number, src: Reg): this {
    return this.push(CLASS_STX | MODE_MEM | SIZE[size], base, src, off, 0);
  }

  /** dst = the map whose fd is given (the verifier replaces it with the map's address). */
  loadMap(dst: Reg, mapFd: number): this {
    this.push(CLASS_LD | MODE_IMM | SIZE_DW, dst, PSEUDO_MAP_FD, 0, mapFd);
    return this.push(0, 0, 0, 0, 0);
  }

  jump(op: keyof typeof JMP, dst: Reg, imm: number, label: string): this {
    return this.push(CLASS_JMP | JMP[op] | SRC_K, dst, 0, 0, imm, label);
  }

  goto(label: string): this {
    return this.push(CLASS_JMP | OP_JA, 0, 0, 0, 0, label);
  }

  call(helper: number): this {
    return this.push(CLASS_JMP | OP_CALL, 0, 0, 0, helper);
  }

  exit(): this {
    return this.push(CLASS_JMP | OP_EXIT, 0, 0, 0, 0);
  }

  /** 8 bytes per instruction, little-endian fields, as bpf(BPF_PROG_LOAD) takes them. */
  assemble(): Buffer {
    const out = Buffer.alloc(this.insns.length * 8);
    this.insns.forEach((insn, pc) => {
      let off = insn.off;
      if (insn.label !== undefined) {
        const target = this.labels.get(insn.label);
        if (target === undefined) throw new Error(`ebpf: undefined label ${insn.label}`);
        off = target - pc - 1;
        if (off < 0) throw new Error(`ebpf: backward jump to ${insn.label} (the verifier rejects loops)`);
      }
      out[pc * 8] = insn.code;
      out[pc * 8 + 1] = (insn.src << 4) | insn.dst;
      out.writeInt16LE(off, pc * 8 + 2);
      out.writeInt32LE(insn.imm | 0, pc * 8 + 4);
    });
    return out;
  }
}
