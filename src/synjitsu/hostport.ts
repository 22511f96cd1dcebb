import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { JitsuError } from '../errors.js';
import { parseMac } from './pdu/ethernet.js';

const exec = promisify(execFile);

/**
 * The host itself is a client too (it owns the bridge's address). Frames sent on the bridge device
 * only go out to its ports, never up the host's own stack, so answers for host clients enter the
 * bridge through a port of ours instead: a veth pair whose bridge end does not learn and is not
 * flooded, so it never steals a guest's MAC or copies other traffic. Frames we send through it carry
 * the port's own source MAC, which is how the capture recognises (and skips) them.
 */
export interface HostPort {
  /** Our end: where host-bound frames are sent. */
  name: string;
  /** The end enslaved to the bridge. */
  bridgePort: string;
  /** Source MAC of every frame we send to the host. */
  mac: Buffer;
  /** The bridge's MAC: the host's frames carry it; frames to it are for the host. */
  bridgeMac: Buffer;
  close(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  await exec('ip', args, { timeout: 10_000 });
}

async function macOf(link: string): Promise<Buffer> {
  return parseMac((await readFile(`/sys/class/net/${link}/address`, 'utf8')).trim());
}

export function hostPortNames(bridge: string): { name: string; bridgePort: string } {
  const base = bridge.slice(0, 10);
  return { name: `${base}-sj`, bridgePort: `${base}-sjp` };
}

export async function openHostPort(bridge: string): Promise<HostPort> {
  const { name, bridgePort } = hostPortNames(bridge);
  const bridgeMacText = (await readFile(`/sys/class/net/${bridge}/address`, 'utf8')).trim();
  await exec('ip', ['link', 'del', name]).catch(() => undefined);
  try {
    await ip('link', 'add', name, 'type', 'veth', 'peer', 'name', bridgePort);
    for (const link of [name, bridgePort]) {
      await exec('sysctl', ['-qw', `net.ipv6.conf.${link}.disable_ipv6=1`]).catch(() => undefined);
    }
    await ip('link', 'set', bridgePort, 'master', bridge);
    await ip('link', 'set', 'dev', bridgePort, 'type', 'bridge_slave', 'learning', 'off', 'flood', 'off', 'mcast_flood', 'off');
    await exec('ip', ['link', 'set', 'dev', bridgePort, 'type', 'bridge_slave', 'bcast_flood', 'off']).catch(() => undefined);
    await ip('link', 'set', name, 'up');
    await ip('link', 'set', bridgePort, 'up');
    // A bridge without a fixed MAC takes its lowest port's: keep the one it had.
    if ((await readFile(`/sys/class/net/${bridge}/address`, 'utf8')).trim() !== bridgeMacText) {
      await ip('link', 'set', bridge, 'address', bridgeMacText);
    }
  } catch (err) {
    await exec('ip', ['link', 'del', name]).catch(() => undefined);
    throw new JitsuError('NETWORK_SETUP', `synjitsu cannot add its host port to bridge ${bridge}: ${err instanceof Error ? err.message : String(err)}`, {
      bridge,
    });
  }
  return {
    name,
    bridgePort,
    mac: await macOf(name),
    bridgeMac: parseMac(bridgeMacText),
    close: async () => {
      await exec('ip', ['link', 'del', name]).catch(() => undefined);
    },
  };
}
