import { isIP } from 'node:net';
import { JitsuError } from '../errors.js';

export interface HostAddress {
  ip: string;
  prefixLength: number;
}

function ipv6Groups(ip: string): number[] {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const parse = (part: string | undefined): number[] => (part ? part.split(':').filter((g) => g !== '').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  if (tail === undefined) return left;
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The host's address on the bridge for a service: the `.1` of its /24, or `::1` of its /64, unless an
 * explicit host CIDR is configured. A service may not take the gateway address itself.
 */
export function hostAddressFor(serviceIp: string, family: 4 | 6, hostCidr?: string): HostAddress {
  if (hostCidr !== undefined) {
    const [ip, len] = hostCidr.split('/') as [string, string];
    if (ip === serviceIp) throw new JitsuError('CONFIG_INVALID', `ip: ${serviceIp} is the host's own address (--host-cidr): pick another`);
    return { ip, prefixLength: Number(len) };
  }
  if (family === 4) {
    const octets = serviceIp.split('.');
    if (octets[3] === '1' || octets[3] === '0' || octets[3] === '255') {
      throw new JitsuError('CONFIG_INVALID', `ip: ${serviceIp} is the network, gateway (.1) or broadcast address of its /24: use .2-.254`);
    }
    return { ip: `${octets[0]}.${octets[1]}.${octets[2]}.1`, prefixLength: 24 };
  }
  if (isIP(serviceIp) !== 6) throw new JitsuError('CONFIG_INVALID', `ip: ${serviceIp} is not an IPv6 address`);
  const groups = ipv6Groups(serviceIp);
  const gateway = [...groups.slice(0, 4), 0, 0, 0, 1].map((g) => g.toString(16)).join(':');
  if (groups.slice(4).every((g, i) => g === (i === 3 ? 1 : 0))) {
    throw new JitsuError('CONFIG_INVALID', `ip: ${serviceIp} is the gateway (::1) of its /64: pick another`);
  }
  return { ip: gateway, prefixLength: 64 };
}
