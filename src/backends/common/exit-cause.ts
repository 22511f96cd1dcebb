/** One wording for how a process ended, shared by the backends' exit reports. */
import { constants } from 'node:os';
import type { ExitReason } from '../backend.js';

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

export function signalName(signal: number | string): string {
  if (typeof signal === 'string') return signal;
  return SIGNAL_NAMES.get(signal) ?? `signal ${signal}`;
}

/** Reason and one-line cause from an exit status or a signal (both null: unknown). */
export function describeExit(code: number | null, signal: number | string | null): { reason: ExitReason; cause: string } {
  if (signal !== null) return { reason: 'killed', cause: `killed by ${signalName(signal)}` };
  if (code === null) return { reason: 'vanished', cause: 'ended (exit status unknown)' };
  if (code === 0) return { reason: 'exited', cause: 'exited with status 0' };
  return { reason: 'failed', cause: `exited with status ${code}` };
}
