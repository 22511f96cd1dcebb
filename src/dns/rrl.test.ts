import { describe, expect, it } from 'vitest';
import { PrefixRateTable } from './rate-table.js';
import { ResponseRateLimiter, type RrlVerdict } from './rrl.js';
import { sourceFromText } from './source.js';

describe('PrefixRateTable (token bucket per /24 and /56, fixed size)', () => {
  it('gives each prefix `rate` tokens per second, a burst of one second, refilled over time', () => {
    const t = new PrefixRateTable({ rate: 10 });
    const a = sourceFromText('192.0.2.1');
    let ok = 0;
    for (let i = 0; i < 25; i++) if (t.take(a, 1000)) ok++;
    expect(ok).toBe(10);
    expect(t.take(a, 1050)).toBe(false); // 0.5 token back: not yet
    expect(t.take(a, 1100)).toBe(true); // one token back after 100 ms
    let later = 0;
    for (let i = 0; i < 25; i++) if (t.take(a, 5000)) later++;
    expect(later).toBe(10); // full again, never more than the burst
  });

  it('groups IPv4 by /24 and IPv6 by /56, and keeps the families apart', () => {
    const t = new PrefixRateTable({ rate: 1 });
    expect(t.take(sourceFromText('192.0.2.1'), 1)).toBe(true);
    expect(t.take(sourceFromText('192.0.2.200'), 1)).toBe(false); // same /24
    expect(t.take(sourceFromText('192.0.3.1'), 1)).toBe(true);
    expect(t.take(sourceFromText('2001:db8:0:aa::1'), 1)).toBe(true);
    expect(t.take(sourceFromText('2001:db8:0:ab::1'), 1)).toBe(false); // same /56
    expect(t.take(sourceFromText('2001:db8:0:100::1'), 1)).toBe(true); // next /56
    expect(t.take(sourceFromText('::ffff:192.0.2.9'), 1)).toBe(false); // mapped = the IPv4 /24
  });

  it('stays bounded under a flood from many prefixes: evicts, never grows', () => {
    const t = new PrefixRateTable({ rate: 5, slots: 64 });
    expect(t.slots).toBe(64);
    for (let i = 0; i < 10_000; i++) t.take(sourceFromText(`10.${(i >> 8) & 255}.${i & 255}.1`), 1 + i * 0.001);
    expect(t.evictions).toBeGreaterThan(9000);
    // A prefix that keeps asking still gets limited amid the flood: its slot is the most recently used.
    const hot = sourceFromText('198.51.100.1');
    let ok = 0;
    for (let i = 0; i < 100; i++) {
      if (t.take(hot, 20 + i * 0.001)) ok++;
      t.take(sourceFromText(`172.16.${i}.1`), 20 + i * 0.001);
    }
    expect(ok).toBeLessThanOrEqual(10);
  });

  it('reuses a slot idle for a second without counting an eviction', () => {
    const t = new PrefixRateTable({ rate: 5, slots: 8 });
    for (let i = 0; i < 8; i++) t.take(sourceFromText(`10.0.${i}.1`), 1);
    for (let i = 0; i < 8; i++) t.take(sourceFromText(`10.1.${i}.1`), 2000);
    expect(t.evictions).toBe(0);
  });
});

describe('ResponseRateLimiter', () => {
  const verdicts = (rrl: ResponseRateLimiter, address: string, n: number): Record<RrlVerdict, number> => {
    const out: Record<RrlVerdict, number> = { send: 0, drop: 0, slip: 0 };
    const s = { ...sourceFromText(address), receivedAt: 1000 }; // one instant: no refill
    for (let i = 0; i < n; i++) out[rrl.check(s)]++;
    return out;
  };

  it('sends `rate` answers, then slips every Nth limited one and drops the rest', () => {
    const rrl = new ResponseRateLimiter({ rate: 100, slip: 2 });
    expect(verdicts(rrl, '203.0.113.5', 1000)).toEqual({ send: 100, slip: 450, drop: 450 });
    const three = new ResponseRateLimiter({ rate: 100, slip: 3 });
    expect(verdicts(three, '203.0.113.5', 400)).toEqual({ send: 100, slip: 100, drop: 200 });
  });

  it('slip 0 drops every limited answer, slip 1 truncates every one', () => {
    expect(verdicts(new ResponseRateLimiter({ rate: 10, slip: 0 }), '203.0.113.5', 50)).toEqual({ send: 10, slip: 0, drop: 40 });
    expect(verdicts(new ResponseRateLimiter({ rate: 10, slip: 1 }), '203.0.113.5', 50)).toEqual({ send: 10, slip: 40, drop: 0 });
  });

  it('never limits loopback (no off-host packet carries it)', () => {
    const rrl = new ResponseRateLimiter({ rate: 1, slip: 2 });
    expect(verdicts(rrl, '127.0.0.1', 100).send).toBe(100);
    expect(verdicts(rrl, '::1', 100).send).toBe(100);
  });
});
