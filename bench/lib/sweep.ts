/**
 * Removes network leftovers of benchmark daemons: netns `jitsu-jt6*` and links `jt6*` (this suite's
 * reserved interface prefix; service names all start with it). A daemon that exits cleanly removes
 * them itself; this covers crashes and kills (including services and guests such a daemon left running).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { run } from './proc.js';

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** QEMU guests a killed daemon left behind: their tap has our prefix. */
function strayGuests(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'latin1');
      if (cmd.includes(`ifname=${PREFIX}`)) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
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
