import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from './codec.js';
import { Flag, QType, Rcode } from './constants.js';
import { headerOnlyReply, opcodeOf, optTtl, questionOnlyReply, replyFlags, writeOpt } from './wire.js';
import { query } from '../../test/helpers/dns-util.js';

describe('wire: header flags and OPT, shared by the codec and the hot path', () => {
  it('replyFlags echoes opcode, RD and CD, sets QR, and keeps only the low rcode bits', () => {
    const queryFlags = (2 << 11) | Flag.RD | Flag.CD | Flag.AD | Flag.TC;
    const flags = replyFlags(queryFlags, Flag.AA, Rcode.BADVERS);
    expect(flags & Flag.QR).toBe(Flag.QR);
    expect(opcodeOf(flags)).toBe(2);
    expect(flags & (Flag.RD | Flag.CD | Flag.AA)).toBe(Flag.RD | Flag.CD | Flag.AA);
    expect(flags & (Flag.AD | Flag.TC)).toBe(0);
    expect(flags & 0xf).toBe(Rcode.BADVERS & 0xf);
  });

  it('writeOpt lays out the record the codec decodes, extended rcode included', () => {
    const msg = query('a.test', QType.A);
    const out = Buffer.concat([msg, Buffer.alloc(11)]);
    out.writeUInt16BE(1, 10);
    writeOpt(out, msg.length, 1400, optTtl(Rcode.BADVERS >> 4, 0, true), 0);
    out[3] = (out[3]! & 0xf0) | (Rcode.BADVERS & 0xf);
    const m = decodeMessage(out);
    expect(m.edns).toEqual({ udpPayloadSize: 1400, version: 0, dnssecOk: true, options: [] });
    expect(m.rcode).toBe(Rcode.BADVERS);
  });

  it('the codec and questionOnlyReply write the same OPT bytes', () => {
    const q = query('a.test', QType.A, { edns: { dnssecOk: true } });
    const questionEnd = q.length - 11;
    const bare = questionOnlyReply(q, questionEnd, 7, replyFlags(0, 0, Rcode.REFUSED), Rcode.REFUSED, true, true);
    const full = encodeMessage({ ...decodeMessage(bare) });
    expect(bare.subarray(questionEnd)).toEqual(full.subarray(questionEnd));
    expect(decodeMessage(bare)).toMatchObject({ id: 7, rcode: Rcode.REFUSED, answers: [], edns: { udpPayloadSize: 1232, dnssecOk: true } });
  });

  it('headerOnlyReply: the ID, the flags, nothing else', () => {
    const out = headerOnlyReply(query('a.test', QType.A, { id: 0xbeef }), replyFlags(0, 0, Rcode.NOTIMP));
    expect(decodeMessage(out)).toMatchObject({ id: 0xbeef, qr: true, rcode: Rcode.NOTIMP, questions: [], additionals: [] });
  });
});
