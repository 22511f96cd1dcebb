/** The guest's host-side tap: made before QEMU starts (QEMU opens it by name), removed on stop. */
import { ipBatch } from '../../network/exec.js';
import { isBridge, linkExists } from '../../network/link.js';
import { JitsuError } from '../../errors.js';

export async function createTap(tap: string, bridge: string): Promise<void> {
  if (!isBridge(bridge)) {
    throw new JitsuError('NETWORK_SETUP', `network setup failed: bridge ${bridge} does not exist (start the daemon, or set nic= to an existing bridge)`, { bridge, tap });
  }
  // A tap left behind by a crashed run would make `tuntap add` fail: replace it.
  if (linkExists(tap)) await ipBatch([`link del ${tap}`]);
  await ipBatch([
    `tuntap add dev ${tap} mode tap`,
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
