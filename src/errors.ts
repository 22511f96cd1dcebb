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
  | 'RESUME_FAILED'
  /** The guest agent of a qemu snapshot did not answer, or refused (clone safety not ensured). */
  | 'AGENT_FAILED'
  /** A memory snapshot could not be taken or restored (the service boots cold instead). */
  | 'SNAPSHOT_FAILED';

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
  AGENT_FAILED: true,
  SNAPSHOT_FAILED: true,
};

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

/** What every code may carry: the service concerned and a lower-level cause in words. */
interface Common {
  service?: string;
  cause?: string;
  /** The backend call that failed (crun/virsh/xl operation). */
  op?: string;
  /** The libvirt/xl domain or crun container concerned. */
  domain?: string;
  container?: string;
}

/** Details of a process that ended (exit status or signal, and its last log lines). */
interface ProcessEnd {
  pid?: number;
  exitCode?: number | null;
  exitSignal?: string | number | null;
  logTail?: string[];
  log?: string;
}

/**
 * The machine-readable facts each code carries (`details`), checked where the error is made.
 * They cross the worker boundary as JSON, so every field is plain data.
 */
export interface ErrorDetails {
  CONFIG_INVALID: Common & { key?: string; value?: string; ip?: string; cidr?: string; bridge?: string; address?: string };
  BACKEND_UNKNOWN: Common & { backend: string };
  BACKEND_UNSUPPORTED: Common & { backend?: string; reason?: string };
  BOOT_FAILED: Common & ProcessEnd & {
    command?: string;
    reason?: string;
    key?: string;
    value?: string;
    /** libvirt connection URI, QMP socket, cgroup directory: where the failing call went. */
    uri?: string;
    qmp?: string;
    cgroup?: string;
    path?: string;
    qemuLog?: string[];
    console?: string[];
  };
  BOOT_TIMEOUT: Common & ProcessEnd;
  READY_TIMEOUT: Common & ProcessEnd & { console?: string[]; state?: string };
  STOP_FAILED: Common & { pid?: number };
  NOT_RUNNING: Common & { pid?: number; reason?: string };
  SERVICE_FAILED: Common & { retryInSeconds: number };
  BOOT_REFUSED: Common & { reason: string };
  NETWORK_SETUP: Common & {
    /** The iproute2/nft command that failed, with its stderr. */
    command?: string;
    stderr?: string;
    script?: string;
    bridge?: string;
    link?: string;
    iface?: string;
    tap?: string;
    pids?: number[];
    what?: string;
  };
  NATIVE_UNAVAILABLE: Common & { path?: string };
  ABORTED: Common;
  STATE_CORRUPT: Common & { missing?: string[] };
  DNS_MALFORMED: Common & { name?: string; address?: string; family?: number };
  UPSTREAM_FAILED: Common & { reason?: string; upstream?: string };
  SERVICE_UNKNOWN: Common;
  CONTROL_FAILED: Common & { path?: string };
  STATE_IN_USE: Common & { path: string };
  NOT_BUILT: Common & { workerFile: string };
  WORKER_FAILED: Common & { op: string };
  RESUME_FAILED: Common & { pid?: number };
  AGENT_FAILED: Common & { reply?: string };
  SNAPSHOT_FAILED: Common & { path?: string; qmp?: string; qemuLog?: string[] };
}

export class JitsuError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  /** Extra machine-readable facts (service name, key, exit status, ...), shaped per code. */
  readonly details: Readonly<ErrorDetails[C]>;

  constructor(code: C, message: string, details: ErrorDetails[C] = {} as ErrorDetails[C], options?: { cause?: unknown }) {
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
