import { isIP } from 'node:net';
import { JitsuError } from '../errors.js';

/** The eight 16-bit groups of an IPv6 address (accepts `::` and embedded IPv4). */
export function ipv6Groups(address: string): number[] {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const h = parse(head);
  if (tail === undefined) return h;
  const t = parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

export function formatIpv6(groups: readonly number[]): string {
  // Compress the longest run of zero groups (RFC 5952), enough for readable addresses.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export interface SubnetGateway {
  family: 4 | 6;
  /** The host's address in the service's subnet (the service's default route). */
  gateway: string;
  prefixLength: number;
}

/**
 * The default host address for a service IP: the `.1` of its /24 (IPv4) or `::1` of its /64
 * (IPv6). A service may not sit on the gateway address itself.
 */
export function defaultGateway(ip: string): SubnetGateway {
  const family = isIP(ip);
  if (family === 4) {
    const o = ip.split('.');
    const gateway = `${o[0]}.${o[1]}.${o[2]}.1`;
    if (gateway === ip) {
      throw new JitsuError('CONFIG_INVALID', `service ip ${ip} is the host's gateway address of its /24: use another address (not .1)`, { ip });
    }
    return { family: 4, gateway, prefixLength: 24 };
  }
  if (family === 6) {
    const g = ipv6Groups(ip);
    const gw = [g[0]!, g[1]!, g[2]!, g[3]!, 0, 0, 0, 1];
    if (g.slice(4).join(':') === '0:0:0:1') {
      throw new JitsuError('CONFIG_INVALID', `service ip ${ip} is the host's gateway address (::1) of its /64: use another address`, { ip });
    }
    return { family: 6, gateway: formatIpv6(gw), prefixLength: 64 };
  }
  throw new JitsuError('CONFIG_INVALID', `"${ip}" is not an IPv4 or IPv6 address`, { ip });
}

/** `ADDRESS/PREFIX` for the host's side of a service subnet. */
export function hostCidr(net: { gateway: string; prefixLength: number }): string {
  return `${net.gateway}/${net.prefixLength}`;
}

/** Parse and check an explicit `ADDRESS/PREFIX` (e.g. `--host-cidr`). */
export function parseCidr(cidr: string): { address: string; prefixLength: number; family: 4 | 6 } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  const family = m ? isIP(m[1]!) : 0;
  const prefixLength = m ? Number(m[2]) : NaN;
  if (!m || family === 0 || prefixLength > (family === 4 ? 32 : 128)) {
    throw new JitsuError('CONFIG_INVALID', `"${cidr}" is not ADDRESS/PREFIX (e.g. 10.0.0.1/24 or fd00::1/64)`, { cidr });
  }
  return { address: m[1]!, prefixLength, family: family as 4 | 6 };
}
