/**
 * What an aborted backend call reports. The pool aborts a call's signal with `AbortSignal.timeout`
 * when its deadline passes (reason: a `TimeoutError` DOMException) and with anything else when the
 * daemon gives the call up (shutdown, a stop overtaking a boot). A deadline is a failure of that
 * call with its own code, so the lifecycle can tell a slow boot from a cancelled one.
 */
import { JitsuError, type ErrorCode } from '../../errors.js';

/** The backend calls a signal bounds. `resume` brings a service back up, so its deadline counts as a boot's. */
export type BoundedCall = 'start' | 'ready' | 'stop' | 'resume';

const TIMEOUT_CODE: Record<BoundedCall, ErrorCode> = {
  start: 'BOOT_TIMEOUT',
  resume: 'BOOT_TIMEOUT',
  ready: 'READY_TIMEOUT',
  stop: 'STOP_FAILED',
};

/** Did `signal` abort because its deadline passed (rather than being cancelled)? */
export function timedOut(signal: AbortSignal): boolean {
  return (signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
}

/** BOOT_TIMEOUT / READY_TIMEOUT / STOP_FAILED by call when the deadline passed, else ABORTED. */
export function abortCode(signal: AbortSignal, call: BoundedCall): ErrorCode {
  return timedOut(signal) ? TIMEOUT_CODE[call] : 'ABORTED';
}

/**
 * The error for `call` cut short by `signal`. `message.timeout` says what did not happen in time;
 * `message.aborted` (default: the same text) what was given up.
 */
export function abortError(signal: AbortSignal, call: BoundedCall, message: { timeout: string; aborted?: string }, details: Record<string, unknown>): JitsuError {
  const text = timedOut(signal) ? message.timeout : (message.aborted ?? message.timeout);
  return new JitsuError(abortCode(signal, call), text, details);
}

/** The plain wording: "`label` `call` timed out|aborted for service `service`". */
export function callAborted(label: string, call: BoundedCall, service: string, signal: AbortSignal): JitsuError {
  return abortError(signal, call, { timeout: `${label} ${call} timed out for service ${service}`, aborted: `${label} ${call} aborted for service ${service}` }, { service });
}
