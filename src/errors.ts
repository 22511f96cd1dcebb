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
  | 'STATE_IN_USE'
  /** A file the build makes is missing (dist/, the backend worker): build first. */
  | 'NOT_BUILT'
  /** A backend worker thread answered with something that is not a reply (a bug, not the backend). */
  | 'WORKER_FAILED'
  /** A suspended service could not be resumed. */
  | 'RESUME_FAILED';

/** Every code (compile-checked: a new code must be added here too). */
const ERROR_CODES: Record<ErrorCode, true> = {
  CONFIG_INVALID: true,
  BACKEND_UNKNOWN: true,
  BACKEND_UNSUPPORTED: true,
  BOOT_FAILED: true,
  BOOT_TIMEOUT: true,
  READY_TIMEOUT: true,
  STOP_FAILED: true,
  NOT_RUNNING: true,
  SERVICE_FAILED: true,
  BOOT_REFUSED: true,
  NETWORK_SETUP: true,
  NATIVE_UNAVAILABLE: true,
  ABORTED: true,
  STATE_CORRUPT: true,
  DNS_MALFORMED: true,
  UPSTREAM_FAILED: true,
  SERVICE_UNKNOWN: true,
  CONTROL_FAILED: true,
  STATE_IN_USE: true,
  NOT_BUILT: true,
  WORKER_FAILED: true,
  RESUME_FAILED: true,
};

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

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

function rawCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * The stable code of a Jitsu error, including one structured-cloned from a worker; undefined for
 * anything else (a Node system error's `ENOENT` is not one of ours: see systemErrorCode).
 */
export function errorCode(err: unknown): ErrorCode | undefined {
  const code = rawCode(err);
  return code !== undefined && isErrorCode(code) ? code : undefined;
}

/** The errno-style code (`ENOENT`, `EADDRINUSE`, ...) of a Node system error. */
export function systemErrorCode(err: unknown): string | undefined {
  const code = rawCode(err);
  return code !== undefined && !isErrorCode(code) ? code : undefined;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}
