/** The guest's host-side tap: made before QEMU starts (QEMU opens it by name), removed on stop. */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { ipBatch } from '../../network/exec.js';
import { isBridge, linkExists } from '../../network/link.js';
import { allPids, killUntilGone } from '../../network/procs.js';
import { JitsuError } from '../../errors.js';

/** PIDs with a tun fd attached to `tap` (its fdinfo says `iff:\t<tap>`): a QEMU still holding it. */
function tapHolders(tap: string): number[] {
  return allPids().filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/net/tun' && readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1').includes(`iff:\t${tap}\n`);
        } catch {
          return false;
        }
      });
    } catch {
      return false; // exited meanwhile, or not ours to read
    }
  });
}

/** `owner`: the user an unprivileged QEMU runs as; a persistent tap it owns is one it may attach to without CAP_NET_ADMIN. */
export async function createTap(tap: string, bridge: string, owner?: { uid: number; gid: number }): Promise<void> {
  if (!isBridge(bridge)) {
    throw new JitsuError('NETWORK_SETUP', `network setup failed: bridge ${bridge} does not exist (start the daemon, or set nic= to an existing bridge)`, { bridge, tap });
  }
  // A tap left behind by a crashed run would make `tuntap add` fail: replace it. The daemon boots
  // only a service it does not run, so a QEMU still attached is a dead daemon's: end it too, or
  // it would live on, unreachable, with the guest's address.
  if (linkExists(tap)) {
    await killUntilGone(() => tapHolders(tap), `tap ${tap}`);
    await ipBatch([`link del ${tap}`]);
  }
  await ipBatch([
    `tuntap add dev ${tap} mode tap${owner ? ` user ${owner.uid} group ${owner.gid}` : ''}`,
    // No host IPv6 on a bridge port: the host would otherwise send DAD/RS frames into the guest.
    `link set ${tap} addrgenmode none`,
    `link set ${tap} master ${bridge}`,
    `link set ${tap} up`,
  ]);
}

export async function removeTap(tap: string): Promise<void> {
  if (!linkExists(tap)) return;
  try {
    await ipBatch([`link del ${tap}`]);
  } catch (err) {
    // Lost a race with another remover: fine. Anything else is real.
    if (linkExists(tap)) throw err;
  }
}
