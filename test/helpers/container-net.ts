// Test network for the container backend: bridge jt5br0 with the host on 10.204.1.1/24, a client netns
// (jt5cli, 10.204.1.100) for curl and nstat, and specs for services on that bridge. Everything is
// named jt5*/10.204.* and removed by teardown().
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBridge, ensureHostAddresses, removeBridge, removeServiceNetns, stableMac, ipBatch, linkExists } from '../../src/network/index.js';
import type { MaskMode, ServiceSpec } from '../../src/backends/backend.js';

export const BRIDGE = 'jt5br0';
export const HOST_IP = '10.204.1.1';
export const CLIENT_NETNS = 'jt5cli';
export const CLIENT_IP = '10.204.1.100';
const CLIENT_HOST_LINK = 'jt5cli-h';

export function rootfs(flavor: 'busybox' | 'node'): string {
  return execFileSync('scripts/build-rootfs.sh', [flavor], { encoding: 'utf8' }).trim();
}

export async function setupNetwork(): Promise<void> {
  await ensureBridge(BRIDGE);
  await ensureHostAddresses(BRIDGE, [`${HOST_IP}/24`]);
  await ipBatch([`netns del ${CLIENT_NETNS}`], { force: true }).catch(() => undefined);
  if (linkExists(CLIENT_HOST_LINK)) await ipBatch([`link del ${CLIENT_HOST_LINK}`]);
  await ipBatch([
    `netns add ${CLIENT_NETNS}`,
    `link add ${CLIENT_HOST_LINK} type veth peer name eth0 netns ${CLIENT_NETNS}`,
    `link set ${CLIENT_HOST_LINK} master ${BRIDGE}`,
    `link set ${CLIENT_HOST_LINK} up`,
  ]);
  await ipBatch([`link set lo up`, `addr add ${CLIENT_IP}/24 dev eth0`, `link set eth0 up`], { netns: CLIENT_NETNS });
}

export async function teardownNetwork(services: readonly string[]): Promise<void> {
  for (const s of services) await removeServiceNetns(s).catch(() => undefined);
  await ipBatch([`link del ${CLIENT_HOST_LINK}`, `netns del ${CLIENT_NETNS}`], { force: true }).catch(() => undefined);
  await removeBridge(BRIDGE).catch(() => undefined);
}

/** A service spec on the test bridge; `n` picks its address 10.204.1.(10+n). */
export function serviceSpec(service: string, n: number, options: Record<string, string[]>, mask: MaskMode, runDirs: string[]): ServiceSpec {
  const runDir = mkdtempSync(join(tmpdir(), `jt5-${service}-`));
  runDirs.push(runDir);
  return {
    service,
    backend: 'container',
    network: { bridge: BRIDGE, family: 4, ip: `10.204.1.${10 + n}`, prefixLength: 24, gateway: HOST_IP, mac: stableMac(`jt5:${service}`) },
    mask,
    options,
    runDir,
  };
}

export function removeDirs(dirs: readonly string[]): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

/** Run a command inside the client netns; resolves stdout, rejects with stderr. */
export function inClient(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', CLIENT_NETNS, cmd, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** TCP SYN retransmissions counted by the client netns's stack so far. */
export async function clientSynRetrans(): Promise<number> {
  const out = await inClient('nstat', ['-asz', '--json', 'TcpExtTCPSynRetrans']);
  const doc = JSON.parse(out) as { kernel?: Record<string, number> };
  return doc.kernel?.['TcpExtTCPSynRetrans'] ?? 0;
}
