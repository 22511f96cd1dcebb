import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { ServiceNetwork } from '../backends/backend.js';
import { JitsuError } from '../errors.js';
import { failure, ip, ipBatch, runTool } from './exec.js';
import { isLinkPassing, linkExists, linkMaster, setLinkPassing, setLinkUp } from './link.js';
import { NETNS_LINK, hostLinkName, netnsName, netnsPath } from './names.js';
import { stableMac } from './mac.js';
import { allPids, killUntilGone } from './procs.js';

/** Listen queue depth allowed inside every service namespace (jitsu-activate asks for this much). */
export const SERVICE_LISTEN_BACKLOG = 65535;

/**
 * Buckets of the TCP hash table each service namespace owns. Enough for a burst of 10k clients
 * (chains of about one), small enough that a walk of the whole table takes ~0.1 ms.
 */
export const SERVICE_TCP_EHASH_ENTRIES = 8192;

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
   * Host side of the veth on the bridge after preparation (link.ts setLinkPassing)? Default false: a
   * service that is not running must neither answer ARP nor RST SYNs (Synjitsu and summon-on-SYN
   * rely on that). The backends put it on when the service can accept. An adopted netns keeps its
   * current state unless given.
   */
  hostLinkPassing?: boolean;
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
    if (opts.hostLinkPassing !== undefined && isLinkPassing(hostLink) !== opts.hostLinkPassing) await setLinkPassing(hostLink, opts.hostLinkPassing);
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
    await createNetns(netns);
    await ipBatch([
      `link add ${hostLink} address ${stableMac(`host:${service}`)} type veth peer name ${NETNS_LINK} address ${network.mac} netns ${netns}`,
      // No IPv6 link-local on the host port: it carries no address and should stay silent.
      `link set ${hostLink} addrgenmode none`,
      `link set ${hostLink} master ${network.bridge}`,
    ]);
    const links = [`link set lo up`];
    if (network.family === 4) links.push(`link set ${NETNS_LINK} addrgenmode none`);
    links.push(`link set ${NETNS_LINK} up`);
    await ipBatch(links, { netns });
    // The host port gets its carrier while nothing inside has an address, so nothing can answer
    // through it, and is then held off the bridge: putting it on later is one netlink request.
    await setLinkUp(hostLink, true);
    if (!opts.hostLinkPassing) await setLinkPassing(hostLink, false);
    await ipBatch(
      [
        `addr add ${network.ip}/${network.prefixLength} dev ${NETNS_LINK}${network.family === 6 ? ' nodad' : ''}`,
        `route add default via ${network.gateway} dev ${NETNS_LINK} onlink`,
        gatewayNeighbour(network),
      ],
      { netns },
    );
  } catch (err) {
    await removeServiceNetns(service).catch(() => undefined);
    throw err;
  }
  return { ...result, adopted: false };
}

/**
 * `ip netns add` run in a throwaway namespace (`unshare --net`, gone when the shell exits) whose
 * net.ipv4.tcp_child_ehash_entries gives the new namespace a TCP hash table of its own (Linux ≥
 * 6.1 reads it from the creator's namespace). Made the plain way, a namespace shares the host's
 * table, sized from RAM (262,144 buckets on a 24 GiB box), and every read of its /proc/net/tcp
 * walks all of them: 5 ms per table, 10 ms for tcp + tcp6, measured. That read is every readiness
 * poll of a process or container boot and every idle sweep (on the daemon's event loop); with its
 * own table it takes ~0.1 ms. An older kernel has no such sysctl: the namespace shares the host's
 * table, as before. The host's own settings stay untouched.
 *
 * Then the per-namespace limits: a service socket-activated during a burst (10k clients at a cold
 * start) must queue every connection, and a table this small would otherwise cap TIME_WAIT at 4096.
 */
async function createNetns(netns: string): Promise<void> {
  const script = [
    'child=/proc/sys/net/ipv4/tcp_child_ehash_entries',
    'if [ -e "$child" ]; then echo "$2" > "$child" || exit 1; fi',
    'ip netns add "$1" || exit 1',
    'exec nsenter --net="$4" sysctl -qw net.core.somaxconn="$3" net.ipv4.tcp_max_syn_backlog="$3" net.ipv4.tcp_max_tw_buckets="$3"',
  ].join('\n');
  const res = await runTool('unshare', ['--net', 'sh', '-c', script, 'sh', netns, String(SERVICE_TCP_EHASH_ENTRIES), String(SERVICE_LISTEN_BACKLOG), netnsPath(netns)]);
  if (res.status !== 0) throw failure(`unshare --net sh -c '…ip netns add ${netns}; sysctl…'`, res.stderr, {});
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
