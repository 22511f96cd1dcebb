/**
 * Removes network leftovers of benchmark daemons: netns `jitsu-jt6*` and links `jt6*` (this suite's
 * reserved interface prefix; service names all start with it). A daemon that exits cleanly removes
 * them itself; this covers crashes and kills.
 */
import { run } from './proc.js';

export const PREFIX = 'jt6';

export async function sweepNetwork(): Promise<string[]> {
  const removed: string[] = [];
  const ns = await run('ip', ['netns', 'list'], 10_000);
  for (const line of ns.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (name.startsWith(`jitsu-${PREFIX}`) || name.startsWith(`${PREFIX}-`)) {
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
