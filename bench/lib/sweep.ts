/**
 * Removes network leftovers of benchmark daemons: netns `jitsu-jt6*` and links `jt6*` (this suite's
 * reserved interface prefix; service names all start with it). A daemon that exits cleanly removes
 * them itself; this covers crashes and kills (including services and guests such a daemon left running).
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './proc.js';

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function processesMatching(test: (cmdline: string) => boolean): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (test(readFileSync(`/proc/${entry}/cmdline`, 'latin1'))) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** QEMU guests a killed daemon left behind: their tap has our prefix. */
function strayGuests(): number[] {
  return processesMatching((cmd) => cmd.includes(`ifname=${PREFIX}`));
}

/** Marks only this suite's processes carry: its temp dirs, zone and helper scripts. */
const STALE_MARKS = ['/jt6-bench-state-', '/jt6-bench-dns-', '.jt6.test', 'bench/macro/dns-layer-server.js', 'bench/macro/probe-client.js'];

/**
 * Before a run: kills what an earlier, killed run left (daemons, peers, dnsperf, clients), never
 * this process or its ancestors, then removes the network leftovers.
 */
export async function sweepStale(): Promise<string[]> {
  const mine = new Set<number>();
  for (let pid = process.pid; pid > 1; ) {
    mine.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  const removed: string[] = [];
  for (const pid of processesMatching((cmd) => STALE_MARKS.some((m) => cmd.includes(m)))) {
    if (mine.has(pid)) continue;
    kill(pid);
    removed.push(`process ${pid}`);
  }
  for (const entry of readdirSync(tmpdir())) {
    if (entry.startsWith('jt6-bench-state-') || entry.startsWith('jt6-bench-dns-')) {
      rmSync(join(tmpdir(), entry), { recursive: true, force: true });
      removed.push(`dir ${entry}`);
    }
  }
  return [...removed, ...(await sweepNetwork())];
}

export const PREFIX = 'jt6';

export async function sweepNetwork(): Promise<string[]> {
  const removed: string[] = [];
  for (const pid of strayGuests()) {
    kill(pid);
    removed.push(`qemu ${pid}`);
  }
  const ns = await run('ip', ['netns', 'list'], 10_000);
  for (const line of ns.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (name.startsWith(`jitsu-${PREFIX}`) || name.startsWith(`${PREFIX}-`)) {
      // Services of a daemon that died uncleanly still run in their namespace.
      const pids = await run('ip', ['netns', 'pids', name], 10_000);
      for (const pid of pids.stdout.split('\n').filter(Boolean)) {
        kill(Number(pid));
        removed.push(`process ${pid}`);
      }
      await run('ip', ['netns', 'del', name], 10_000);
      removed.push(`netns ${name}`);
    }
  }
  const links = await run('ip', ['-o', 'link', 'show'], 10_000);
  for (const line of links.stdout.split('\n')) {
    const m = line.match(/^\d+:\s+([^:@\s]+)/);
    const name = m?.[1];
    if (name?.startsWith(PREFIX)) {
      const r = await run('ip', ['link', 'del', name], 10_000);
      if (r.code === 0) removed.push(`link ${name}`);
    }
  }
  return removed;
}
