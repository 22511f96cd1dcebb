/**
 * A client host of its own: a network namespace with a veth on a test's bridge and an address in the
 * service subnet. Its TCP counters (nstat) are its own, so SYN retransmissions are measured exactly.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ClientNetns {
  readonly name: string;
  /** Run a command inside the namespace. */
  exec(cmd: string, args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Absolute TCP counters of this namespace. */
  tcpCounters(): Promise<{ synRetrans: number; retransSegs: number }>;
  remove(): Promise<void>;
}

export async function createClientNetns(name: string, bridge: string, cidr: string, gateway: string): Promise<ClientNetns> {
  const hostSide = `${name}h`;
  const remove = async (): Promise<void> => {
    await run('ip', ['link', 'del', hostSide]).catch(() => undefined);
    await run('ip', ['netns', 'del', name]).catch(() => undefined);
  };
  await remove();
  try {
    await run('ip', ['netns', 'add', name]);
    await run('ip', ['link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    await run('ip', ['link', 'set', hostSide, 'master', bridge, 'up']);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', name, 'addr', 'add', cidr, 'dev', 'eth0']);
    await run('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', name, 'route', 'add', 'default', 'via', gateway]);
  } catch (err) {
    await remove();
    throw err;
  }
  const exec = async (cmd: string, args: string[], timeoutMs = 30_000) => {
    try {
      const r = await run('ip', ['netns', 'exec', name, cmd, ...args], { timeout: timeoutMs });
      return { stdout: r.stdout, stderr: r.stderr, code: 0 };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; code?: number };
      return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : -1 };
    }
  };
  return {
    name,
    exec,
    async tcpCounters() {
      const { stdout } = await exec('nstat', ['-asz', 'TcpExtTCPSynRetrans', 'TcpRetransSegs']);
      const value = (key: string): number => Number(new RegExp(`^${key}\\s+(\\d+)`, 'm').exec(stdout)?.[1] ?? NaN);
      return { synRetrans: value('TcpExtTCPSynRetrans'), retransSegs: value('TcpRetransSegs') };
    },
    remove,
  };
}
