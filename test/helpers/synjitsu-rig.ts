/**
 * A real network for Synjitsu tests: a bridge (promiscuous, fixed MAC), a CLIENT netns on a veth,
 * and a "VM" netns on a veth whose host side stays DOWN until the simulated boot ends — exactly how
 * the process backend models a booting VM. An HTTP server already listens inside the VM netns, so
 * "boot done" = host veth up. Everything lives in 10.202.<n>.0/24 with `jt3` names and is removed
 * by cleanup(), even after failures.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export async function run(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? String(err), code: typeof e.code === 'number' ? e.code : 1 };
  }
}

async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Why this machine cannot run the rig, or undefined when it can. */
export function rigUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (netns, bridges, raw sockets)';
  for (const bin of ['/usr/sbin/ip', '/usr/sbin/nft', '/usr/bin/curl', '/usr/bin/nstat']) {
    if (!existsSync(bin) && !existsSync(bin.replace('/usr/sbin/', '/sbin/').replace('/usr/bin/', '/bin/'))) return `missing ${bin}`;
  }
  return undefined;
}

export interface RigCounters {
  synRetrans: number;
  retransSegs: number;
  /** Retransmission timeouts fired (also counts a SYN whose retransmit was deferred in the ARP queue). */
  timeouts: number;
}

export class SynjitsuRig {
  readonly bridge: string;
  readonly clientNs: string;
  readonly vmNs: string;
  readonly clientLink: string;
  readonly vmLink: string;
  readonly subnet: string;
  readonly clientIp: string;
  readonly vmIp: string;
  readonly vmMac: string;
  readonly clientMac: string;
  private readonly servers: ChildProcess[] = [];
  /** A second "VM" on the same bridge (see addSecondVm). */
  readonly vm2 = { ns: '', link: '', ip: '', mac: '' };

  /** `n` picks the /24 (10.202.n.0) and the names; each test file uses its own. */
  constructor(readonly n: number) {
    if (!Number.isInteger(n) || n < 1 || n > 250) throw new RangeError('rig number must be 1..250');
    this.bridge = `jt3b${n}`;
    this.clientNs = `jt3-c${n}`;
    this.vmNs = `jt3-v${n}`;
    this.clientLink = `jt3c${n}h`;
    this.vmLink = `jt3v${n}h`;
    this.subnet = `10.202.${n}`;
    this.clientIp = `${this.subnet}.2`;
    this.vmIp = `${this.subnet}.10`;
    const hex = n.toString(16).padStart(2, '0');
    this.vmMac = `02:3a:ca:${hex}:00:0a`;
    this.clientMac = `02:3a:ca:${hex}:00:02`;
  }

  async setup(): Promise<void> {
    await this.cleanup();
    const ip = (...a: string[]): Promise<string> => must('ip', a);
    await ip('link', 'add', this.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await ip('link', 'set', this.bridge, 'address', `02:3a:ca:${this.n.toString(16).padStart(2, '0')}:00:01`);
    await must('sysctl', ['-qw', `net.ipv6.conf.${this.bridge}.disable_ipv6=1`]);
    await ip('link', 'set', this.bridge, 'up');
    for (const [ns, link, mac, addr] of [
      [this.clientNs, this.clientLink, this.clientMac, this.clientIp],
      [this.vmNs, this.vmLink, this.vmMac, this.vmIp],
    ] as const) {
      await ip('netns', 'add', ns);
      await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await must('sysctl', ['-qw', `net.ipv6.conf.${link}.disable_ipv6=1`]);
      await ip('link', 'set', link, 'master', this.bridge);
      await ip('-n', ns, 'link', 'set', 'eth0', 'address', mac);
      await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    }
    // The client's port is the bridge's always-up port; the VM's stays down until its "boot" ends.
    await ip('link', 'set', this.clientLink, 'up');
    await must('ip', ['netns', 'exec', this.vmNs, 'sysctl', '-qw', 'net.core.somaxconn=8192', 'net.ipv4.tcp_max_syn_backlog=8192']);
    await must('ip', ['netns', 'exec', this.clientNs, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=20000 60999']);
  }

  /** Starts the service's HTTP server inside the VM netns (listening before its link is up). */
  async startServer(port = 80, ns = this.vmNs): Promise<void> {
    // GET /big/N answers N pattern bytes; any body is hashed and its length + sha256 echoed back.
    const script = `
      const http = require('node:http');
      const crypto = require('node:crypto');
      const s = http.createServer((req, res) => {
        let body = 0;
        const hash = crypto.createHash('sha256');
        req.on('data', (c) => { body += c.length; hash.update(c); });
        req.on('end', () => {
          res.setHeader('connection', 'close');
          const big = /^\\/big\\/(\\d+)$/.exec(req.url);
          if (big) {
            const n = Number(big[1]);
            const chunk = Buffer.alloc(65536);
            for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
            res.setHeader('content-length', n);
            let left = n;
            const pump = () => {
              while (left > 0) {
                const part = chunk.subarray(0, Math.min(left, chunk.length));
                left -= part.length;
                if (!res.write(part)) return res.once('drain', pump);
              }
              res.end();
            };
            return pump();
          }
          res.end('hello from vm ' + req.method + ' ' + body + ' ' + hash.digest('hex') + '\\n');
        });
      });
      s.keepAliveTimeout = 1000;
      s.listen({ port: ${port}, host: '0.0.0.0', backlog: 8192 }, () => process.stdout.write('listening\\n'));
    `;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.servers.push(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('VM http server did not start')), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`VM http server exited ${code}`)));
    });
  }

  /** A second service on the same bridge: netns jt3-w<n>, host link jt3w<n>h (down), <subnet>.11. */
  async addSecondVm(): Promise<void> {
    const hex = this.n.toString(16).padStart(2, '0');
    Object.assign(this.vm2, { ns: `jt3-w${this.n}`, link: `jt3w${this.n}h`, ip: `${this.subnet}.11`, mac: `02:3a:ca:${hex}:00:0b` });
    const { ns, link, ip: addr, mac } = this.vm2;
    await must('ip', ['netns', 'add', ns]);
    await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await must('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must('sysctl', ['-qw', `net.ipv6.conf.${link}.disable_ipv6=1`]);
    await must('ip', ['link', 'set', link, 'master', this.bridge]);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', mac]);
    await must('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await this.startServer(80, ns);
  }

  /** The simulated boot ends: the VM's link comes up. */
  async linkUp(): Promise<void> {
    await must('ip', ['link', 'set', this.vmLink, 'up']);
  }

  /**
   * The client remembers the VM's MAC (a STALE neighbour entry), as after talking to it before it
   * was stopped: its SYN then leaves at once instead of waiting in the ARP queue.
   */
  async seedClientNeighbour(): Promise<void> {
    await must('ip', ['-n', this.clientNs, 'neigh', 'replace', this.vmIp, 'lladdr', this.vmMac, 'dev', 'eth0', 'nud', 'stale']);
  }

  /** Gives the host the bridge's .1, making the host itself a client of the service. */
  async hostAddress(): Promise<string> {
    const addr = `${this.subnet}.1`;
    await run('ip', ['addr', 'add', `${addr}/24`, 'dev', this.bridge]);
    return addr;
  }

  /** One curl from the host itself (not a netns). */
  async hostCurl(path = '/', timeoutS = 10): Promise<{ code: number; connect: number; firstByte: number; body: string; stderr: string }> {
    const r = await run('curl', ['-sS', '--max-time', String(timeoutS), '-w', '\n%{time_connect} %{time_starttransfer}', `http://${this.vmIp}${path}`], (timeoutS + 5) * 1000);
    const lines = r.stdout.trimEnd().split('\n');
    const [connect, firstByte] = (lines.pop() ?? '0 0').split(' ').map(Number);
    return { code: r.code, connect: connect ?? 0, firstByte: firstByte ?? 0, body: lines.join('\n'), stderr: r.stderr };
  }

  /**
   * Back to "not booted": link down, neighbour caches cleared so each test starts cold. The previous
   * test's client sockets are destroyed too: one still closing towards a guest that is gone would
   * retransmit its FIN into this test's retransmission counters.
   */
  async reset(): Promise<void> {
    await run('ip', ['netns', 'exec', this.clientNs, 'ss', '-K', 'state', 'connected', 'exclude', 'time-wait']);
    await run('ip', ['neigh', 'flush', 'dev', this.bridge]);
    await must('ip', ['link', 'set', this.vmLink, 'down']);
    await run('ip', ['-n', this.clientNs, 'neigh', 'flush', 'all']);
    await run('ip', ['-n', this.vmNs, 'neigh', 'flush', 'all']);
    await run('bridge', ['fdb', 'flush', 'dev', this.bridge]);
  }

  inClient(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.clientNs, cmd, ...args], timeoutMs);
  }

  /** The client's kernel retransmission counters (absolute). */
  async counters(): Promise<RigCounters> {
    const r = await this.inClient('nstat', ['-asz', 'TcpExtTCPSynRetrans', 'TcpRetransSegs', 'TcpExtTCPTimeouts']);
    const value = (name: string): number => Number(new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN);
    return { synRetrans: value('TcpExtTCPSynRetrans'), retransSegs: value('TcpRetransSegs'), timeouts: value('TcpExtTCPTimeouts') };
  }

  /** One curl from the client: connect and first-byte times in seconds, body, exit code. */
  async curl(path = '/', extra: readonly string[] = [], timeoutS = 10): Promise<{ code: number; connect: number; firstByte: number; body: string; stderr: string }> {
    const r = await this.inClient(
      'curl',
      ['-sS', '--max-time', String(timeoutS), '-w', '\n%{time_connect} %{time_starttransfer}', ...extra, `http://${this.vmIp}${path}`],
      (timeoutS + 5) * 1000,
    );
    const lines = r.stdout.trimEnd().split('\n');
    const [connect, firstByte] = (lines.pop() ?? '0 0').split(' ').map(Number);
    return { code: r.code, connect: connect ?? 0, firstByte: firstByte ?? 0, body: lines.join('\n'), stderr: r.stderr };
  }

  async cleanup(): Promise<void> {
    for (const server of this.servers.splice(0)) {
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 50));
    await run('ip', ['link', 'del', `jt3w${this.n}h`]);
    await run('ip', ['netns', 'del', `jt3-w${this.n}`]);
    await run('ip', ['link', 'del', this.clientLink]);
    await run('ip', ['link', 'del', this.vmLink]);
    await run('ip', ['link', 'del', `${this.bridge.slice(0, 10)}-sj`]);
    await run('ip', ['link', 'del', this.bridge]);
    await run('ip', ['netns', 'del', this.clientNs]);
    await run('ip', ['netns', 'del', this.vmNs]);
    await run('nft', ['delete', 'table', 'bridge', `jitsu_synjitsu_${this.bridge}`]);
    await run('nft', ['delete', 'table', 'ip', `jitsu_synjitsu_${this.bridge}`]);
  }
}
