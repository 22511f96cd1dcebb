/**
 * Reset every TCP connection in a service's network namespace (SOCK_DESTROY, `ss -K`): the kernel
 * aborts each socket and sends its peer a RST with the right sequence numbers. Done before a
 * service is stopped and before its link goes down, so a client mid-transfer learns at once that
 * the service is gone instead of waiting on a black hole. Needs CONFIG_INET_DIAG_DESTROY; where the
 * kernel lacks it the stop goes on and the killed process's own FIN/RST is all the client gets.
 */
import { runTool } from './exec.js';

/** Returns how many connections were reset, or undefined when the kernel or the tools could not. */
export async function resetConnections(netns: string): Promise<number | undefined> {
  try {
    const res = await runTool('ip', ['netns', 'exec', netns, 'ss', '-K', '-H', '-t', 'state', 'connected']);
    if (res.status !== 0) return undefined;
    return res.stdout.split('\n').filter((line) => line.trim() !== '').length;
  } catch {
    return undefined;
  }
}
