import { isIP } from 'node:net';
import { formatIpv6, writeIpv6 } from '../dns/address.js';
import { JitsuError } from '../errors.js';

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
    const bytes = new Uint8Array(16);
    writeIpv6(ip, bytes, 0); // cannot throw: isIP accepted it
    if (bytes.subarray(8).every((b, k) => b === (k === 7 ? 1 : 0))) {
      throw new JitsuError('CONFIG_INVALID', `service ip ${ip} is the host's gateway address (::1) of its /64: use another address`, { ip });
    }
    bytes.fill(0, 8);
    bytes[15] = 1;
    return { family: 6, gateway: formatIpv6(bytes, 0), prefixLength: 64 };
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
