import { describe, expect, it } from 'vitest';
import { MSS_TABLE, SynCookies } from './cookies.js';

const secret = Buffer.alloc(16, 7);

describe('SynCookies', () => {
  it('round-trips MSS class and window scale for the same tuple', () => {
    const c = new SynCookies(secret, () => 1000);
    for (const [mss, ws] of [[1460, 7], [536, -1], [9000, 14], [-1, 0], [1400, 3]] as const) {
      const isn = c.make(1, 2, 3, 4, 0xdeadbeef, mss, ws);
      const facts = c.check(1, 2, 3, 4, 0xdeadbeef, isn);
      expect(facts).toBeDefined();
      expect(facts!.wscale).toBe(ws);
      expect(facts!.mss).toBeLessThanOrEqual(mss < 0 ? 536 : mss);
      expect(MSS_TABLE).toContain(facts!.mss);
    }
  });
  it('rejects another tuple, another client ISN, a flipped bit and another secret', () => {
    const c = new SynCookies(secret, () => 1000);
    const isn = c.make(1, 2, 3, 4, 99, 1460, 7);
    expect(c.check(1, 2, 3, 5, 99, isn)).toBeUndefined();
    expect(c.check(1, 2, 3, 4, 100, isn)).toBeUndefined();
    expect(c.check(1, 2, 3, 4, 99, isn ^ 1)).toBeUndefined();
    expect(new SynCookies(Buffer.alloc(16, 8), () => 1000).check(1, 2, 3, 4, 99, isn)).toBeUndefined();
  });
  it('expires after two 64 s slots', () => {
    let now = 6400;
    const c = new SynCookies(secret, () => now);
    const isn = c.make(1, 2, 3, 4, 5, 1460, 7);
    now += 64;
    expect(c.check(1, 2, 3, 4, 5, isn)).toBeDefined();
    now += 64;
    expect(c.check(1, 2, 3, 4, 5, isn)).toBeUndefined();
    now += 64 * 30; // the 5-bit slot wraps back to the cookie's: still rejected
    expect(c.check(1, 2, 3, 4, 5, isn)).toBeUndefined();
  });
  it('forged ACKs almost never verify (2^-20 per guess)', () => {
    const c = new SynCookies(secret, () => 1000);
    let hits = 0;
    for (let i = 0; i < 20_000; i++) if (c.check(1, 2, 3, 4, i, (Math.random() * 2 ** 32) >>> 0)) hits++;
    expect(hits).toBeLessThan(3);
  });
});
