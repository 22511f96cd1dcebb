import { readFileSync } from 'node:fs';
import { JitsuError } from '../errors.js';
import { ipBatch } from './exec.js';
import { isBridge, linkExists, linkMaster, setLinkUp } from './link.js';
import { MAX_IFNAME, isValidIfName } from './names.js';
import { parseCidr } from './addr.js';
import { stableMac } from './mac.js';

export const DEFAULT_BRIDGE = 'jitsu0';

export interface BridgeOptions {
  /** Fixed bridge MAC; default stableMac(name), so the bridge MAC never follows its ports. */
  mac?: string;
  /**
   * Keep one port always up (a veth pair `<name>-ka`/`<name>-kb`), so the bridge keeps its carrier
   * while every service port is down (booting services keep their port down). Default true; only
   * applied to a bridge this call creates.
   */
  keepalive?: boolean;
}

export interface BridgeInfo {
  name: string;
  /**
   * True when this call created the bridge, or took over one whose maker (a Jitsu daemon) is dead:
   * the daemon removes it on clean exit only then.
   */
  created: boolean;
  keepalive?: string;
}

export function keepaliveNames(bridge: string): [string, string] {
  const base = bridge.slice(0, MAX_IFNAME - 3);
  return [`${base}-ka`, `${base}-kb`];
}

/** A process's start time (clock ticks since boot): with the pid, it names one process, never a successor reusing the pid. */
function processStartTime(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat; the command name (field 2, in parentheses) may contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * A bridge the daemon makes carries its maker in the link alias (`jitsu:PID:STARTTIME`). The state
 * dir records ownership too, but a daemon started with a fresh state dir after a crash reads it here:
 * a bridge whose maker is gone is ours to take over (and remove on exit), not a stranger's.
 */
function makerAlias(pid: number): string {
  return `jitsu:${pid}:${processStartTime(pid) ?? 0}`;
}

function madeByDeadDaemon(bridge: string): boolean {
  let alias: string;
  try {
    alias = readFileSync(`/sys/class/net/${bridge}/ifalias`, 'latin1').trim();
  } catch {
    return false;
  }
  const pid = /^jitsu:(\d+):\d+$/.exec(alias)?.[1];
  return pid !== undefined && makerAlias(Number(pid)) !== alias;
}

/** The keepalive pair on the bridge, replacing a stale half (a pair whose bridge was deleted). */
async function ensureKeepalive(bridge: string, ka: string, kb: string): Promise<void> {
  if (linkExists(ka) && linkMaster(ka) === bridge) return;
  const stale = [ka, kb].filter(linkExists).map((l) => `link del ${l}`);
  await ipBatch([
    ...stale.slice(0, 1), // deleting one end of a veth deletes both
    `link add ${ka} type veth peer name ${kb}`,
    `link set ${ka} addrgenmode none`,
    `link set ${kb} addrgenmode none`,
    // The pair lives in the host namespace: without NOARP the kb end would answer ARP for the
    // host's gateway addresses with its own MAC, and services would send to the wrong port.
    `link set ${ka} arp off`,
    `link set ${kb} arp off`,
    `link set ${ka} master ${bridge}`,
    `link set ${kb} up`,
    `link set ${ka} up`,
  ]);
}

/**
 * Make sure the daemon's bridge exists and is up. An existing bridge of that name is adopted
 * (created=false) unless a dead daemon made it (then it is taken over: created=true); an existing
 * non-bridge link of that name is an error.
 */
export async function ensureBridge(name: string = DEFAULT_BRIDGE, opts: BridgeOptions = {}): Promise<BridgeInfo> {
  if (!isValidIfName(name)) {
    throw new JitsuError('CONFIG_INVALID', `bridge name "${name}" is not a valid interface name (1-15 chars, no spaces, / or :)`, { bridge: name });
  }
  const keepalive = opts.keepalive ?? true;
  const [ka, kb] = keepaliveNames(name);
  let created = false;
  if (linkExists(name)) {
    if (!isBridge(name)) {
      throw new JitsuError('NETWORK_SETUP', `network setup failed: ${name} exists and is not a bridge: choose another --bridge name`, { bridge: name });
    }
    await setLinkUp(name, true);
    if (madeByDeadDaemon(name)) {
      await ipBatch([`link set ${name} alias ${makerAlias(process.pid)}`]);
      created = true;
    }
  } else {
    await ipBatch([`link add ${name} address ${opts.mac ?? stableMac(name)} type bridge`, `link set ${name} alias ${makerAlias(process.pid)}`, `link set ${name} up`]);
    created = true;
  }
  // Only on a bridge we made (or one a dead daemon made): never add ports to someone else's
  // bridge, which we would then leave behind on exit.
  if (keepalive && created) await ensureKeepalive(name, ka, kb);
  return linkExists(ka) ? { name, created, keepalive: ka } : { name, created };
}

/** Remove the bridge (and its keepalive pair). Idempotent. */
export async function removeBridge(name: string): Promise<void> {
  const [ka] = keepaliveNames(name);
  const lines: string[] = [];
  if (linkExists(ka)) lines.push(`link del ${ka}`);
  if (linkExists(name)) lines.push(`link del ${name}`);
  await ipBatch(lines, { force: true });
}

function addrLine(verb: 'replace' | 'del', cidr: string, bridge: string): string {
  const { family } = parseCidr(cidr);
  // nodad: the host's IPv6 gateway address is usable at once instead of after ~1 s of DAD.
  return `addr ${verb} ${cidr} dev ${bridge}${family === 6 && verb === 'replace' ? ' nodad' : ''}`;
}

/** Give the host these addresses (gateway CIDRs of service subnets) on the bridge, in one exec. */
export async function ensureHostAddresses(bridge: string, cidrs: readonly string[]): Promise<void> {
  await ipBatch([...new Set(cidrs)].map((c) => addrLine('replace', c, bridge)));
}

/** Remove host addresses from the bridge; addresses already gone are fine. */
export async function removeHostAddresses(bridge: string, cidrs: readonly string[]): Promise<void> {
  if (!linkExists(bridge)) return;
  try {
    await ipBatch([...new Set(cidrs)].map((c) => addrLine('del', c, bridge)), { force: true });
  } catch (err) {
    // "Address not found" / "Cannot assign requested address" = already gone; anything else is real.
    const stderr = String((err as { details?: { stderr?: unknown } }).details?.stderr ?? '');
    if (!stderr.split('\n').every((l) => l.trim() === '' || /Address not found|Cannot assign requested address/.test(l))) throw err;
  }
}
