import { describe, expect, it } from 'vitest';
import { AddressSet, copySource, LOOPBACK, sourceFromText, type QuerySource } from './source.js';

/** A sockaddr as the native socket delivers it: inside a larger arena, at an offset. */
function inArena(address: string, offset = 64): QuerySource {
  const s = sourceFromText(address);
  const arena = new Uint8Array(offset + 32).fill(0xee);
  arena.set(s.bytes.subarray(0, 28), offset);
  return { bytes: arena, offset, receivedAt: s.receivedAt };
}

describe('AddressSet (pre-parsed prefix match)', () => {
  const set = new AddressSet(['127.0.0.0/8', '10.208.3.0/24', '192.0.2.77', '2001:db8:aa00::/40', '::1/128', '0.0.0.0/32']);

  it.each([
    ['127.0.0.1', true],
    ['127.255.1.2', true],
    ['128.0.0.1', false],
    ['10.208.3.255', true],
    ['10.208.4.1', false],
    ['192.0.2.77', true],
    ['192.0.2.78', false],
    ['2001:db8:aa12::5', true],
    ['2001:db8:ab00::5', false],
    ['::1', true],
    ['::2', false],
    ['::ffff:10.208.3.9', true], // IPv4-mapped counts as IPv4
    ['::ffff:10.208.9.9', false],
  ])('%s -> %s', (address, inside) => {
    expect(set.contains(sourceFromText(address))).toBe(inside);
    expect(set.contains(inArena(address))).toBe(inside);
  });

  it('ignores host bits and takes /0 as everyone', () => {
    expect(new AddressSet(['10.1.2.3/16']).contains(sourceFromText('10.1.99.1'))).toBe(true);
    const all = new AddressSet(['0.0.0.0/0', '::/0']);
    expect(all.contains(sourceFromText('203.0.113.1'))).toBe(true);
    expect(all.contains(sourceFromText('2001:db8::1'))).toBe(true);
    expect(new AddressSet([]).contains(sourceFromText('127.0.0.1'))).toBe(false);
  });

  it('rejects what is not a prefix, with the fix', () => {
    expect(() => new AddressSet(['10.0.0.0/33'])).toThrow(/"10.0.0.0\/33" is not ADDRESS\/PREFIX/);
    expect(() => new AddressSet(['example.com/24'])).toThrow(/not ADDRESS\/PREFIX/);
  });

  it('knows loopback', () => {
    expect(LOOPBACK.contains(sourceFromText('127.0.0.53'))).toBe(true);
    expect(LOOPBACK.contains(sourceFromText('::1'))).toBe(true);
    expect(LOOPBACK.contains(sourceFromText('10.0.0.1'))).toBe(false);
  });

  it('copies a source out of a reused arena', () => {
    const live = inArena('10.208.3.4');
    const kept = copySource(live);
    live.bytes.fill(0);
    expect(set.contains(kept)).toBe(true);
  });
});
