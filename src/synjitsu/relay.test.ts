import { describe, expect, it } from 'vitest';
import { clientAckToGuest, clientWindowToGuest, guestSeqToClient, guestWindowToClient } from './relay.js';

describe('relay sequence translation', () => {
  it('maps the guest ISN onto ours, across the 2^32 wrap on either side', () => {
    const guestIsn = 0xfffffff0;
    const ourIsn = 100;
    expect(guestSeqToClient(guestIsn, guestIsn, ourIsn)).toBe(ourIsn);
    // 21 bytes into the guest's stream: its numbers wrapped, ours did not.
    expect(guestSeqToClient((guestIsn + 21) >>> 0, guestIsn, ourIsn)).toBe(121);
    expect(guestSeqToClient(356, 100, 0xffffff00)).toBe(0);
  });

  it('translates a client ACK back into the guest space exactly', () => {
    const cases: Array<[number, number]> = [
      [0, 0xffffffff],
      [0xfffffff0, 5],
      [123456789, 987654321],
      [0x80000000, 0x7fffffff],
    ];
    for (const [guestIsn, ourIsn] of cases) {
      for (const offset of [0, 1, 1460, 0x7fffffff, 0xfffffffe]) {
        const guestSeq = (guestIsn + offset) >>> 0;
        const seen = guestSeqToClient(guestSeq, guestIsn, ourIsn);
        expect(seen).toBe((ourIsn + offset) >>> 0);
        expect(clientAckToGuest(seen, ourIsn, guestIsn)).toBe(guestSeq);
      }
    }
  });
});

describe('relay window rescaling', () => {
  it('turns the guest window into bytes and back into the scale agreed with the client', () => {
    expect(guestWindowToClient(1000, 7, 7)).toBe(1000);
    expect(guestWindowToClient(1000, 9, 7)).toBe(4000);
    expect(guestWindowToClient(1000, 5, 7)).toBe(250);
    // The guest declined scaling: its field is bytes.
    expect(guestWindowToClient(1000, -1, 7)).toBe(7);
    // The client did not offer scaling (ourWs 0).
    expect(guestWindowToClient(1000, -1, 0)).toBe(1000);
  });

  it('never advertises more than the 16-bit field holds', () => {
    expect(guestWindowToClient(0xffff, 14, 0)).toBe(0xffff);
    expect(clientWindowToGuest(0xffff, 7, -1)).toBe(0xffff);
  });

  it('hands the guest the client window raw unless the guest declined the client’s scaling', () => {
    expect(clientWindowToGuest(100, 7, 7)).toBe(100);
    expect(clientWindowToGuest(100, 7, 3)).toBe(100);
    expect(clientWindowToGuest(100, -1, -1)).toBe(100);
    expect(clientWindowToGuest(100, 7, -1)).toBe(12800);
  });
});
