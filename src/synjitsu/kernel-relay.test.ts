import { closeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../native/index.js';
import { EbpfAssembler } from './ebpf.js';
import { encodeKey, encodeRewrite, KernelRelay, KEY_SIZE, relayProgram, VALUE_SIZE, type Rewrite } from './kernel-relay.js';
import { FRAME_TCP, FrameView } from './pdu/frame.js';
import { parseMac } from './pdu/ethernet.js';
import { ipv4ChecksumOk, parseIpv4 } from './pdu/ipv4.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, tcpChecksumOk, writeTcpFrame } from './pdu/tcp.js';
import { clientAckToGuest, clientWindowToGuest, guestSeqToClient, guestWindowToClient } from './relay.js';

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

describe.skipIf(process.getuid?.() !== 0)('the relay program in the kernel (BPF_PROG_TEST_RUN) agrees with relay.ts', () => {
  const native = loadNative();
  const guest = parseIpv4('10.202.0.10');
  const client = parseIpv4('10.202.0.250');
  const mac = parseMac('02:00:00:00:00:01');
  const payload = Buffer.from('x'.repeat(100));

  function frame(srcIp: number, dstIp: number, srcPort: number, dstPort: number, seqNo: number, ackNo: number, window: number, flags = TCP_ACK | TCP_PSH): Buffer {
    const out = Buffer.alloc(256);
    const len = writeTcpFrame(out, 0, { srcMac: mac, dstMac: mac, srcIp, dstIp, srcPort, dstPort, seq: seqNo, ack: ackNo, flags, window, payload });
    return out.subarray(0, len);
  }

  function withProgram(entries: Array<[Parameters<typeof encodeKey>[0], Rewrite]>, body: (runOn: (f: Buffer) => { result: number; view: FrameView; frame: Buffer }) => void): void {
    const mapFd = native.bpfHashMap(KEY_SIZE, VALUE_SIZE, 16);
    const progFd = native.bpfLoadTcProgram(relayProgram(mapFd, native.RELAY_MARK), 'jitsu_relay_t');
    try {
      for (const [t, r] of entries) native.bpfMapUpdate(mapFd, encodeKey(t), encodeRewrite(r));
      body((f) => {
        const out = native.bpfTestRun(progFd, f);
        const view = new FrameView();
        expect(view.parse(out.frame, 0, out.frame.length)).toBe(FRAME_TCP);
        return { result: out.result, view, frame: out.frame };
      });
    } finally {
      closeSync(progFd);
      closeSync(mapFd);
    }
  }

  const cases: Array<{ guestIsn: number; ourIsn: number; guestWs: number; clientWs: number }> = [
    { guestIsn: 0xfffffff0, ourIsn: 100, guestWs: 7, clientWs: 7 },
    { guestIsn: 123456789, ourIsn: 0xffffff00, guestWs: 9, clientWs: 7 },
    { guestIsn: 5, ourIsn: 0x80000005, guestWs: -1, clientWs: 7 },
    { guestIsn: 77, ourIsn: 0x12345678, guestWs: -1, clientWs: -1 },
  ];

  for (const c of cases) {
    it(`guest ISN ${c.guestIsn}, ours ${c.ourIsn}, window scales guest ${c.guestWs} / client ${c.clientWs}`, () => {
      const ourWs = c.clientWs >= 0 ? 7 : 0;
      const toClient = { srcIp: guest, srcPort: 80, dstIp: client, dstPort: 40000 };
      const toGuest = { srcIp: client, srcPort: 40000, dstIp: guest, dstPort: 80 };
      // The same rewrites relay.ts installs (Relay.install).
      const entries: Array<[typeof toClient, Rewrite]> = [
        [toClient, { seqDelta: c.ourIsn - c.guestIsn, ackDelta: 0, shiftLeft: Math.max(0, c.guestWs), shiftRight: ourWs }],
        [toGuest, { seqDelta: 0, ackDelta: c.guestIsn - c.ourIsn, shiftLeft: c.clientWs >= 0 && c.guestWs < 0 ? c.clientWs : 0, shiftRight: 0 }],
      ];
      withProgram(entries, (runOn) => {
        for (const offset of [1, 1461, 0x7fffffff]) {
          const guestSeq = (c.guestIsn + offset) >>> 0;
          const fromGuest = runOn(frame(guest, client, 80, 40000, guestSeq, 4242, 1000));
          expect(fromGuest.result).toBe(-1); // TCX_NEXT: the frame goes on
          expect(fromGuest.view.seq).toBe(guestSeqToClient(guestSeq, c.guestIsn, c.ourIsn));
          expect(fromGuest.view.ack).toBe(4242);
          expect(fromGuest.frame.readUInt16BE(fromGuest.view.tcpOff + 14)).toBe(guestWindowToClient(1000, c.guestWs, ourWs));
          expect(tcpChecksumOk(fromGuest.frame, fromGuest.view.tcpOff, fromGuest.view.tcpLen, guest, client)).toBe(true);
          expect(ipv4ChecksumOk(fromGuest.frame, fromGuest.view.ipOff)).toBe(true);

          const clientAck = guestSeqToClient(guestSeq, c.guestIsn, c.ourIsn);
          const fromClient = runOn(frame(client, guest, 40000, 80, 999, clientAck, 300));
          expect(fromClient.view.seq).toBe(999);
          expect(fromClient.view.ack).toBe(clientAckToGuest(clientAck, c.ourIsn, c.guestIsn));
          expect(fromClient.frame.readUInt16BE(fromClient.view.tcpOff + 14)).toBe(clientWindowToGuest(300, c.clientWs, c.guestWs));
          expect(tcpChecksumOk(fromClient.frame, fromClient.view.tcpOff, fromClient.view.tcpLen, client, guest)).toBe(true);
        }
      });
    });
  }

  it('leaves frames of other connections, and the ACK field of a segment without ACK, alone', () => {
    const toGuest = { srcIp: client, srcPort: 40000, dstIp: guest, dstPort: 80 };
    withProgram([[toGuest, { seqDelta: 0, ackDelta: 12345, shiftLeft: 0, shiftRight: 0 }]], (runOn) => {
      const other = frame(client, guest, 40001, 80, 1, 2, 3);
      expect(runOn(other).frame.equals(other)).toBe(true);
      const syn = frame(client, guest, 40000, 80, 1, 2, 3, TCP_SYN);
      expect(runOn(syn).view.ack).toBe(2);
    });
  });
});
