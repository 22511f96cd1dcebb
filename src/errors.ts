/**
 * Errors that cross module boundaries carry a stable `code`. Callers match codes, never
 * classes: errors from worker threads arrive as plain objects and lose their prototype.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'BACKEND_UNKNOWN'
  | 'BACKEND_UNSUPPORTED'
  | 'BOOT_FAILED'
  | 'BOOT_TIMEOUT'
  | 'READY_TIMEOUT'
  | 'STOP_FAILED'
  | 'NOT_RUNNING'
  | 'SERVICE_FAILED'
  /** A boot not started: --max-booting boots already run, or the client is over its --summon-rate. */
  | 'BOOT_REFUSED'
  | 'NETWORK_SETUP'
  | 'NATIVE_UNAVAILABLE'
  | 'ABORTED'
  | 'STATE_CORRUPT'
  | 'DNS_MALFORMED'
  | 'UPSTREAM_FAILED'
  /** A control command named a service the running configuration does not have. */
  | 'SERVICE_UNKNOWN'
  /** No daemon answers on the state dir's control socket (or the socket cannot be reached). */
  | 'CONTROL_FAILED'
  /** Another running daemon already uses this state dir (its control socket answers). */
  | 'STATE_IN_USE';

export class JitsuError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (service name, key, exit status, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JitsuError';
    this.code = code;
    this.details = details;
  }
}

/** The stable code of any thrown value, including errors that were structured-cloned from a worker. */
export function errorCode(err: unknown): ErrorCode | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code as ErrorCode;
  }
  return undefined;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}
