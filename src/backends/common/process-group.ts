/**
 * Signalling a service's process group. Every backend that starts a process on this host starts it
 * as the leader of its own group (detached, or `setsid` in the launcher), so a signal to the group
 * reaches whatever it forked too.
 *
 * One rule for errors, for every backend:
 * - ESRCH means gone: the group (or, for a leader that already left it, the pid) has no process left
 *   to signal, which is what a stop wants. Stopping a stopped service is fine.
 * - EPERM (and anything else) is an error to report: the process is still there and we may not
 *   touch it (a pid reused by another user's process we should never have aimed at, or a confined
 *   daemon without CAP_KILL). Swallowing it would report a stop that did not happen, and the
 *   service would live on with its address; callers turn it into STOP_FAILED.
 */

/**
 * Send `signal` to the process group led by `pid`, else to `pid` alone (a leader whose group is gone
 * but that is still there, e.g. a zombie leader). ESRCH is success; any other failure is thrown.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if (errnoOf(err) !== 'ESRCH') throw err;
    try {
      process.kill(pid, signal);
    } catch (e) {
      if (errnoOf(e) !== 'ESRCH') throw e;
    }
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
