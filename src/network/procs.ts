import { readdirSync } from 'node:fs';
import { JitsuError } from '../errors.js';

/** Every process's /proc entry name, for scans that look for leftovers (a few ms on a busy host). */
export function allPids(): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
}

/**
 * SIGKILL what `find` reports until it reports nothing, waiting at most `timeoutMs`. For leftovers
 * of a dead daemon only (a stale service in a namespace we replace, a QEMU holding a tap we
 * replace): they hold what a boot needs, and nobody is left to stop them gracefully.
 */
export async function killUntilGone(find: () => number[], what: string, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (let pids = find(); pids.length > 0; pids = find()) {
    if (performance.now() > deadline) {
      throw new JitsuError('NETWORK_SETUP', `network setup failed: processes ${pids.join(', ')} holding ${what} did not exit after SIGKILL`, { pids, what });
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
