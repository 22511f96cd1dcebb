import { describe, expect, it } from 'vitest';
import { EbpfAssembler } from './ebpf.js';
import { encodeKey, encodeRewrite, KernelRelay, KEY_SIZE, relayProgram, VALUE_SIZE } from './kernel-relay.js';
import { parseIpv4 } from './pdu/ipv4.js';

const tuple = { srcIp: parseIpv4('10.202.0.10'), srcPort: 80, dstIp: parseIpv4('10.202.0.250'), dstPort: 40000 };

describe('kernel relay map entries', () => {
  it('keys are the 4-tuple as the headers carry it (network order)', () => {
    const key = encodeKey(tuple);
    expect(key).toHaveLength(KEY_SIZE);
    expect([...key]).toEqual([10, 202, 0, 10, 10, 202, 0, 250, 0, 80, 0x9c, 0x40]);
  });

  it('values hold deltas mod 2^32 and the window shifts', () => {
    const v = encodeRewrite({ seqDelta: -5, ackDelta: 0x1_0000_0003, shiftLeft: 7, shiftRight: 14 });
    expect(v).toHaveLength(VALUE_SIZE);
    expect(v.readUInt32LE(0)).toBe(0xfffffffb);
    expect(v.readUInt32LE(4)).toBe(3);
    expect([v[8], v[9]]).toEqual([7, 14]);
  });
});

describe('ebpf assembler', () => {
  it('resolves forward labels and encodes a map load as two slots', () => {
    const prog = new EbpfAssembler().jump('jeq', 1, 0, 'out').loadMap(1, 42).label('out').alu64('mov', 0, -1).exit().assemble();
    expect(prog).toHaveLength(5 * 8);
    expect(prog.readInt16LE(2)).toBe(2); // skips both halves of the 16-byte load
    expect(prog[8 + 1]).toBe(0x11); // src = BPF_PSEUDO_MAP_FD, dst = r1
    expect(prog.readInt32LE(8 + 4)).toBe(42);
    expect(prog.readInt32LE(3 * 8 + 4)).toBe(-1);
  });

  it('refuses backward jumps and undefined labels', () => {
    expect(() => new EbpfAssembler().label('top').goto('top').assemble()).toThrow(/backward/);
    expect(() => new EbpfAssembler().goto('nowhere').assemble()).toThrow(/undefined label/);
  });

  it('the relay program ends every path in exit', () => {
    const prog = relayProgram(3, 0x4a54534a);
    expect(prog.length % 8).toBe(0);
    expect(prog[prog.length - 8]).toBe(0x95);
  });
});

describe.skipIf(process.getuid?.() !== 0)('kernel relay on this kernel', () => {
  it('the verifier accepts the program, and map entries come and go', () => {
    const opened = KernelRelay.open(16);
    // A string is the reason the daemon would log before relaying in userspace (loading needs no tcx).
    if (typeof opened === 'string') throw new Error(`kernel relay unavailable: ${opened}`);
    expect(opened.delete(tuple)).toBe(false);
    opened.set(tuple, { seqDelta: 1, ackDelta: 0, shiftLeft: 0, shiftRight: 0 });
    expect(opened.delete(tuple)).toBe(true);
    opened.close();
  });
});
