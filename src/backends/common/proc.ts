/**
 * What /proc says about a process: its state and start time (with the pid, the identity of one
 * process: a pid alone is not enough after a restart, the kernel may have reused it), its exit
 * status while a zombie, its network namespace (its sockets: src/network/sockets.ts).
 */
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { readSmallFile } from '../../system/files.js';

/** What /proc says about one pid. */
export interface ProcStat {
  /** One-letter state: R S D T t Z X ... */
  state: string;
  /** Start time in clock ticks since boot (field 22): with the pid, identifies one process. */
  startTime: number;
  /** waitpid()-style status once the process is a zombie (field 52), else 0. */
  exitStatus: number;
}

/** Parse /proc/PID/stat text. The command name (field 2) may hold spaces and parens: split after the last ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).trim().split(' ');
  // fields[0] is field 3 (state); field N is fields[N - 3].
  const state = fields[0];
  const startTime = Number(fields[22 - 3]);
  if (!state || !Number.isFinite(startTime)) return undefined;
  const exit = fields.length >= 52 - 2 ? Number(fields[52 - 3]) : 0;
  return { state, startTime, exitStatus: Number.isFinite(exit) ? exit : 0 };
}

export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readSmallFile(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return undefined;
  }
}

export type Liveness = 'alive' | 'stopped-signal' | 'exited' | 'gone';

/**
 * Is `pid` still the process we started (same start time)? A reused pid is reported as gone: we
 * must never signal a stranger. Zombies are exited (their status is in `stat.exitStatus`).
 */
export function liveness(pid: number, startTime: number): { state: Liveness; stat?: ProcStat } {
  const stat = readProcStat(pid);
  if (!stat || stat.startTime !== startTime) return { state: 'gone' };
  if (stat.state === 'Z' || stat.state === 'X') {
    // A zombie leader whose other threads are still exiting still holds its files (sockets).
    return { state: threadCount(pid) <= 1 ? 'exited' : 'alive', stat };
  }
  if (stat.state === 'T' || stat.state === 't') return { state: 'stopped-signal', stat };
  return { state: 'alive', stat };
}

/**
 * Alive = exists, is not a zombie, and (when `startTime` is given) started when we recorded it.
 * Stricter than `liveness` about zombies: an exited child nobody reaped yet is not alive here even
 * while its other threads are still exiting.
 */
export function isAlive(pid: number | undefined, startTime: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  const stat = readProcStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}

function threadCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return 0;
  }
}

/** Decode a waitpid() status word. */
export function decodeWaitStatus(status: number): { code: number | null; signal: number | null } {
  const sig = status & 0x7f;
  if (sig === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: null, signal: sig };
}

/** What /proc/PID/ns/net reads as for a process inside the netns mounted at `netnsPath`. */
export function netnsLink(netnsPath: string): string {
  try {
    return `net:[${statSync(netnsPath).ino}]`;
  } catch {
    return 'net:[missing]';
  }
}

/** Has `pid` entered the network namespace whose link (see netnsLink) is `nsLink` yet? */
export function inNetns(pid: number, nsLink: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`) === nsLink;
  } catch {
    return false;
  }
}
