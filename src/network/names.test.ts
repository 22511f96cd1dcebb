import { describe, expect, it } from 'vitest';
import { defaultGateway, parseCidr } from './addr.js';
import { hostLinkName, isValidIfName, netnsName } from './names.js';
import { keepaliveNames } from './bridge.js';

describe('service network names', () => {
  it('names the netns after the service', () => {
    expect(netnsName('web')).toBe('jitsu-web');
    expect(netnsName('a b/c')).toMatch(/^jitsu-a-b-c-[0-9a-f]{8}$/);
    expect(netnsName('a.b')).not.toBe(netnsName('a-b'));
  });
  it('keeps host link names within 15 characters, recognisable and distinct', () => {
    expect(hostLinkName('web')).toBe('web-v');
    expect(hostLinkName('jt2-thirteen1')).toBe('jt2-thirteen1-v');
    const long = hostLinkName('jt2-a-very-long-service-name');
    expect(long).toMatch(/^jt2-a-very-[0-9a-f]{4}$/);
    expect(long.length).toBeLessThanOrEqual(15);
    expect(hostLinkName('jt2-a-very-long-service-nameX')).not.toBe(long);
    expect(hostLinkName('a.b')).not.toBe(hostLinkName('a-b'));
    for (const s of ['x', 'web', 'jt2-thirteen12', 'ü', 'a'.repeat(40)]) expect(isValidIfName(hostLinkName(s))).toBe(true);
    expect(keepaliveNames('jitsu0')).toEqual(['jitsu0-ka', 'jitsu0-kb']);
    expect(keepaliveNames('abcdefghijklmno')[0]).toHaveLength(15);
  });
  it('rejects bad interface names', () => {
    expect(isValidIfName('')).toBe(false);
    expect(isValidIfName('a'.repeat(16))).toBe(false);
    expect(isValidIfName('a b')).toBe(false);
    expect(isValidIfName('a/b')).toBe(false);
  });
});

describe('gateway addresses', () => {
  it('uses .1 of the /24 and ::1 of the /64', () => {
    expect(defaultGateway('10.201.3.7')).toEqual({ family: 4, gateway: '10.201.3.1', prefixLength: 24 });
    expect(defaultGateway('fd00:201:0:3::7')).toEqual({ family: 6, gateway: 'fd00:201:0:3::1', prefixLength: 64 });
    expect(defaultGateway('2001:db8::1:2')).toEqual({ family: 6, gateway: '2001:db8::1', prefixLength: 64 });
  });
  it('refuses a service on the gateway address and non-addresses', () => {
    expect(() => defaultGateway('10.0.0.1')).toThrow(/gateway/);
    expect(() => defaultGateway('fd00::1')).toThrow(/gateway/);
    expect(() => defaultGateway('web')).toThrow(/not an IPv4 or IPv6/);
  });
  it('parses CIDRs', () => {
    expect(parseCidr('10.201.0.1/16')).toEqual({ address: '10.201.0.1', prefixLength: 16, family: 4 });
    expect(parseCidr('fd00::1/64').family).toBe(6);
    expect(() => parseCidr('10.0.0.1/33')).toThrow(/ADDRESS\/PREFIX/);
    expect(() => parseCidr('10.0.0.1')).toThrow();
  });
});
