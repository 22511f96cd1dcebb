import { createHash } from 'node:crypto';

/**
 * A stable, locally administered unicast MAC for a name: the same service gets the same MAC across
 * restarts, so ARP caches, Synjitsu's ARP answers and the guest agree without coordination.
 */
export function stableMac(name: string, prefix = 0x02): string {
  const digest = createHash('sha256').update(name).digest();
  const bytes = [prefix & 0xfe | 0x02, digest[0]!, digest[1]!, digest[2]!, digest[3]!, digest[4]!];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
