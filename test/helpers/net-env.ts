/**
 * A private test network for the jt2 area: one bridge (`jt2b<N>`), the host on 10.201.N.1/24, and
 * an optional client namespace on the same bridge (10.201.N.250), so curl and nstat run where the
 * counters only see this test's traffic. Everything is removed by `cleanup()`, even after failures.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ServiceNetwork } from '../../src/backends/backend.js';
import { ensureBridge, ensureHostAddresses, ipBatch, linkExists, removeBridge, removeServiceNetns, stableMac } from '../../src/network/index.js';

const run = promisify(execFile);

export interface NetEnv {
  bridge: string;
  /** Third octet N of 10.201.N.0/24. */
  subnet: number;
  gateway: string;
  runDir: string;
  clientNetns?: string;
  clientIp?: string;
  /** A ServiceNetwork for `service` at 10.201.N.<host>. */
  network(service: string, host: number): ServiceNetwork;
  /** Remember a service whose netns cleanup() must remove. */
  track(service: string): void;
  /** Run a command inside the client namespace. */
  inClient(cmd: string, args: readonly string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  cleanup(): Promise<void>;
}

export async function createNetEnv(subnet: number, opts: { client?: boolean } = {}): Promise<NetEnv> {
  if (subnet < 1 || subnet > 254) throw new Error('subnet must be 1..254');
  const bridge = `jt2b${subnet}`;
  const gateway = `10.201.${subnet}.1`;
  const services = new Set<string>();
  const runDir = mkdtempSync(join(tmpdir(), 'jt2-run-'));
  const clientNetns = opts.client ? `jt2-client${subnet}` : undefined;
  const clientLink = `jt2c${subnet}`;
  const clientIp = opts.client ? `10.201.${subnet}.250` : undefined;

  const env: NetEnv = {
    bridge,
    subnet,
    gateway,
    runDir,
    ...(clientNetns ? { clientNetns, clientIp } : {}),
    network: (service, host) => ({ bridge, family: 4, ip: `10.201.${subnet}.${host}`, prefixLength: 24, gateway, mac: stableMac(service) }),
    track: (service) => void services.add(service),
    inClient: async (cmd, args, timeoutMs = 10_000) => {
      if (!clientNetns) throw new Error('no client netns in this env');
      return run('ip', ['netns', 'exec', clientNetns, cmd, ...args], { timeout: timeoutMs });
    },
    cleanup: async () => {
      for (const s of services) await removeServiceNetns(s).catch(() => undefined);
      if (clientNetns) {
        const lines: string[] = [];
        if (linkExists(clientLink)) lines.push(`link del ${clientLink}`);
        if (existsSync(`/run/netns/${clientNetns}`)) lines.push(`netns del ${clientNetns}`);
        await ipBatch(lines, { force: true }).catch(() => undefined);
      }
      await removeBridge(bridge).catch(() => undefined);
      rmSync(runDir, { recursive: true, force: true });
    },
  };
  try {
    await env.cleanup(); // leftovers of an interrupted earlier run
    mkdirSync(runDir, { recursive: true }); // cleanup() removed it
    await ensureBridge(bridge);
    await ensureHostAddresses(bridge, [`${gateway}/24`]);
    if (clientNetns) {
      await ipBatch([
        `netns add ${clientNetns}`,
        `link add ${clientLink} type veth peer name eth0 netns ${clientNetns}`,
        `link set ${clientLink} addrgenmode none`,
        `link set ${clientLink} master ${bridge}`,
        `link set ${clientLink} up`,
      ]);
      await ipBatch(['link set lo up', `addr add ${clientIp}/24 dev eth0`, 'link set eth0 up'], { netns: clientNetns });
    }
  } catch (err) {
    await env.cleanup();
    throw err;
  }
  return env;
}

/** Names of links and namespaces with our prefixes still present (for "leaves nothing behind"). */
export async function leftovers(prefix = 'jt2'): Promise<string[]> {
  const { stdout: links } = await run('ip', ['-o', 'link', 'show']);
  const { stdout: ns } = await run('ip', ['netns', 'list']);
  const found = links
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => !!n && n.startsWith(prefix));
  for (const line of ns.split('\n')) {
    const name = line.split(' ')[0];
    if (name && (name.startsWith(prefix) || name.startsWith(`jitsu-${prefix}`))) found.push(`netns:${name}`);
  }
  return found;
}

/** Absolute value of one nstat counter inside a namespace (per-netns counters: only our traffic). */
export async function nstatCounter(netns: string, counter: string): Promise<number> {
  const { stdout } = await run('ip', ['netns', 'exec', netns, 'nstat', '-azs', counter]);
  const m = new RegExp(`^${counter}\\s+(\\d+)`, 'm').exec(stdout);
  if (!m) throw new Error(`nstat did not report ${counter}: ${stdout}`);
  return Number(m[1]);
}
