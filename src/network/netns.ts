import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { ServiceNetwork } from '../backends/backend.js';
import { JitsuError } from '../errors.js';
import { ip, ipBatch } from './exec.js';
import { isLinkUp, linkExists, linkMaster, setLinkUp } from './link.js';
import { NETNS_LINK, hostLinkName, netnsName, netnsPath } from './names.js';
import { stableMac } from './mac.js';
import { allPids, killUntilGone } from './procs.js';

/** Listen queue depth allowed inside every service namespace (jitsu-activate asks for this much). */
export const SERVICE_LISTEN_BACKLOG = 65535;

export interface PreparedNetns {
  service: string;
  netns: string;
  /** What setns(2) opens (`/run/netns/<netns>`). */
  netnsPath: string;
  /** Host side of the veth, a port of the bridge. */
  hostLink: string;
  /** True when an existing, correctly configured netns (e.g. from a previous daemon) was kept. */
  adopted: boolean;
}

export interface PrepareOptions {
  /**
   * Host side of the veth up after preparation? Default false: a service that is not running must
   * neither answer ARP nor RST SYNs (Synjitsu and summon-on-SYN rely on that). The process backend
   * brings it up when the service can accept. An adopted netns keeps its current state unless given.
   */
  hostLinkUp?: boolean;
  /**
   * Nothing of ours runs in this namespace (the daemon adopts no service there), so an existing one
   * is a dead daemon's leftover: every process still inside is killed and the namespace and veth are
   * rebuilt, never adopted. Without this, a stale service would keep the ports a boot needs.
   */
  replace?: boolean;
}

interface AddrInfo {
  ifname?: string;
  address?: string;
  operstate?: string;
  addr_info?: { local?: string; prefixlen?: number }[];
}

/** Does the existing netns already match `network`? (Then a running service in it keeps working.) */
async function matches(network: ServiceNetwork, netns: string, hostLink: string): Promise<boolean> {
  if (!existsSync(netnsPath(netns)) || !linkExists(hostLink) || linkMaster(hostLink) !== network.bridge) return false;
  let out: string;
  try {
    out = await ip(['-n', netns, '-j', 'addr', 'show', 'dev', NETNS_LINK]);
  } catch {
    return false;
  }
  const info = (JSON.parse(out) as AddrInfo[])[0];
  if (!info || info.address?.toLowerCase() !== network.mac.toLowerCase()) return false;
  return (info.addr_info ?? []).some((a) => a.local === network.ip && a.prefixlen === network.prefixLength);
}

/**
 * The gateway's MAC (the bridge's fixed MAC) as a permanent neighbour inside the netns: the
 * service never ARPs for its gateway. Without it, an ARP attempt made while the host side was
 * down leaves the entry failed, and the first SYN-ACK after the link comes up waits for the next
 * ARP retry (1 s) — exactly the delay socket activation exists to avoid.
 */
function gatewayNeighbour(network: ServiceNetwork): string {
  let mac: string;
  try {
    mac = readFileSync(`/sys/class/net/${network.bridge}/address`, 'latin1').trim();
  } catch (err) {
    throw new JitsuError('NETWORK_SETUP', `network setup failed: cannot read the MAC of bridge ${network.bridge}`, { bridge: network.bridge }, { cause: err });
  }
  return `neigh replace ${network.gateway} lladdr ${mac} dev ${NETNS_LINK} nud permanent`;
}

/**
 * Create (once) the service's network namespace: veth pair with the host side on the bridge and
 * `eth0` inside carrying the service's MAC and IP, default route via the gateway, `lo` up. A
 * later boot is then only an exec. Re-running over an existing namespace adopts it when it matches,
 * else rebuilds it. Two execs when creating (a host batch and a batch inside the netns).
 */
export async function prepareServiceNetns(network: ServiceNetwork, service: string, opts: PrepareOptions = {}): Promise<PreparedNetns> {
  const netns = netnsName(service);
  const hostLink = hostLinkName(service);
  const result = { service, netns, netnsPath: netnsPath(netns), hostLink };
  if (opts.replace) await killUntilGone(() => netnsPids(netns), `stale namespace ${netns}`);
  else if (await matches(network, netns, hostLink)) {
    // Cheap and idempotent: the gateway (host CIDR) may have changed while the address did not.
    await ipBatch([`route replace default via ${network.gateway} dev ${NETNS_LINK} onlink`, gatewayNeighbour(network)], { netns });
    if (opts.hostLinkUp !== undefined && isLinkUp(hostLink) !== opts.hostLinkUp) await setLinkUp(hostLink, opts.hostLinkUp);
    return { ...result, adopted: true };
  }
  await removeServiceNetns(service);
  if (!linkExists(network.bridge)) {
    throw new JitsuError('NETWORK_SETUP', `network setup failed: bridge ${network.bridge} does not exist (ensureBridge first)`, {
      bridge: network.bridge,
      service,
    });
  }
  try {
    await ipBatch([
      `netns add ${netns}`,
      `link add ${hostLink} address ${stableMac(`host:${service}`)} type veth peer name ${NETNS_LINK} address ${network.mac} netns ${netns}`,
      // No IPv6 link-local on the host port: it carries no address and should stay silent.
      `link set ${hostLink} addrgenmode none`,
      `link set ${hostLink} master ${network.bridge}`,
    ]);
    const inside = [`link set lo up`];
    if (network.family === 4) inside.push(`link set ${NETNS_LINK} addrgenmode none`);
    inside.push(
      `addr add ${network.ip}/${network.prefixLength} dev ${NETNS_LINK}${network.family === 6 ? ' nodad' : ''}`,
      `link set ${NETNS_LINK} up`,
      `route add default via ${network.gateway} dev ${NETNS_LINK} onlink`,
      gatewayNeighbour(network),
    );
    await ipBatch(inside, { netns });
    // Per-namespace limits: a service socket-activated during a burst (10k clients at a cold start)
    // must queue every connection; the host's own limits stay untouched.
    await ip(['netns', 'exec', netns, 'sysctl', '-qw', `net.core.somaxconn=${SERVICE_LISTEN_BACKLOG}`, `net.ipv4.tcp_max_syn_backlog=${SERVICE_LISTEN_BACKLOG}`]);
    // Last, once the inside is configured (and waiting until the port forwards).
    if (opts.hostLinkUp) await setLinkUp(hostLink, true);
  } catch (err) {
    await removeServiceNetns(service).catch(() => undefined);
    throw err;
  }
  return { ...result, adopted: false };
}

/** PIDs of the processes whose network namespace is `netns` (what `ip netns pids` reports). */
function netnsPids(netns: string): number[] {
  let inode: number;
  try {
    inode = statSync(netnsPath(netns)).ino;
  } catch {
    return [];
  }
  const target = `net:[${inode}]`;
  return allPids().filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/ns/net`) === target;
    } catch {
      return false; // exited meanwhile, or a kernel thread
    }
  });
}

/**
 * Remove the service's veth and namespace. Idempotent. Processes still inside keep the namespace
 * alive until they exit; the backend stops them first.
 */
export async function removeServiceNetns(service: string): Promise<void> {
  const netns = netnsName(service);
  const hostLink = hostLinkName(service);
  const lines: string[] = [];
  if (linkExists(hostLink)) lines.push(`link del ${hostLink}`);
  if (existsSync(netnsPath(netns))) lines.push(`netns del ${netns}`);
  await ipBatch(lines, { force: true });
}

export { hostLinkName, netnsName, netnsPath };
