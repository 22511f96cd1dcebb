/**
 * A client network namespace on a daemon's bridge, running bench/macro/probe-client.js: the host's
 * view of a service, with TCP counters of its own. Names: netns `jt6-cli-TAG`, host link `jt6cTAG`.
 */
import { join } from 'node:path';
import { deferCleanup } from './cleanup.js';
import { run, start, tail, type Proc } from './proc.js';

export interface ProbeReply {
  ok: boolean;
  error?: string;
  ip?: string;
  dnsMs?: number;
  connectMs?: number;
  firstByteMs?: number | number[];
  served?: number;
  failed?: number;
  errors?: Record<string, number> | string[];
  answerMs?: number[];
  totalMs?: number;
  synRetrans: number;
  retransSegs: number;
}

export interface ProbeClient {
  netns: string;
  address: string;
  pid: number;
  send(cmd: Record<string, unknown>, timeoutMs: number): Promise<ProbeReply>;
  close(): Promise<void>;
}

async function must(args: string[]): Promise<void> {
  const r = await run('ip', args, 10_000);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** `cidr`: the client's address on the bridge, e.g. 10.205.2.250/24 (inside the services' /24). */
export async function startProbeClient(root: string, bridge: string, tag: string, cidr: string): Promise<ProbeClient> {
  const netns = `jt6-cli-${tag}`;
  const host = `jt6c${tag}`;
  const peer = `jt6c${tag}n`;
  let proc: Proc | undefined;
  const close = deferCleanup(async () => {
    await proc?.kill(2000);
    await run('ip', ['netns', 'del', netns], 10_000);
    await run('ip', ['link', 'del', host], 10_000);
  });
  try {
    await run('ip', ['netns', 'del', netns], 10_000);
    await run('ip', ['link', 'del', host], 10_000);
    await must(['netns', 'add', netns]);
    await must(['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    await must(['link', 'set', peer, 'netns', netns]);
    await must(['-n', netns, 'link', 'set', peer, 'name', 'eth0']);
    await must(['-n', netns, 'addr', 'add', cidr, 'dev', 'eth0']);
    await must(['-n', netns, 'link', 'set', 'lo', 'up']);
    await must(['-n', netns, 'link', 'set', 'eth0', 'up']);
    await must(['link', 'set', host, 'master', bridge]);
    await must(['link', 'set', host, 'up']);
    proc = start('ip', ['netns', 'exec', netns, process.execPath, join(root, 'dist/bench/macro/probe-client.js')], { stdin: true });
    await proc.waitFor(/probe-client ready/, 15_000);
  } catch (err) {
    await close();
    throw err;
  }
  const p = proc;
  // Replies arrive one JSON line per command, in order; read them off the stream as they come.
  const lines: string[] = [];
  let partial = '';
  p.child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.startsWith('{')) lines.push(line);
    }
  });
  return {
    netns,
    address: cidr.split('/')[0]!,
    pid: p.pid,
    async send(cmd, timeoutMs) {
      lines.length = 0;
      p.child.stdin!.write(JSON.stringify(cmd) + '\n');
      const until = Date.now() + timeoutMs;
      for (;;) {
        const line = lines.shift();
        if (line !== undefined) return JSON.parse(line) as ProbeReply;
        if (Date.now() > until) throw new Error(`probe client gave no answer within ${timeoutMs} ms: ${tail(p.stderr())}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    },
    close,
  };
}
