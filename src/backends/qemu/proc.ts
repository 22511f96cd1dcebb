/**
 * Is a recorded QEMU still the same live process? A pid alone is not enough after a restart: the
 * kernel may have reused it, and an exited child nobody reaped is a zombie that kill(0) still finds.
 */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  state: string;
  /** Start time in clock ticks since boot (field 22): with the pid, a unique process identity. */
  startTime: number;
}

export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '?', startTime: Number(fields[19]) };
}

/** Alive = exists, is not a zombie, and (when known) started when we recorded it. */
export function isAlive(pid: number | undefined, startTime: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  const st = readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    // QEMU leads its own process group (spawned detached): the group dies with it.
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
