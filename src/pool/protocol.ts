/**
 * Messages between the main thread and the backend workers. Everything is structured-clone safe:
 * errors travel as `{ code, message, details }` and are rebuilt as JitsuError on the main side.
 */
import type { MessagePort } from 'node:worker_threads';
import type { BackendHandle, ExitReport, RuntimeState, ServiceSpec, StopMode } from '../backends/backend.js';
import type { ErrorCode } from '../errors.js';
import { JitsuError, errorCode, errorMessage, systemErrorCode } from '../errors.js';

export type PoolRequest =
  | { op: 'start'; spec: ServiceSpec; timeoutMs: number }
  /** start() (or resume() of `suspended`) then ready(); `bootId` names the boot in its BootStarted message. */
  | { op: 'boot'; spec: ServiceSpec; timeoutMs: number; bootId: number; suspended?: BackendHandle }
  | { op: 'prepare'; spec: ServiceSpec; timeoutMs: number }
  | { op: 'ready'; handle: BackendHandle; spec: ServiceSpec; timeoutMs: number }
  | { op: 'stop'; handle: BackendHandle; spec: ServiceSpec; mode: StopMode; timeoutMs: number }
  | { op: 'resume'; handle: BackendHandle; spec: ServiceSpec; timeoutMs: number }
  | { op: 'state'; handle: BackendHandle; spec: ServiceSpec }
  | { op: 'exitReport'; handle: BackendHandle; spec: ServiceSpec };

export type PoolOp = PoolRequest['op'];

/**
 * A worker posts this once its module graph has loaded. Terminating a thread while Node still
 * loads its modules can abort the whole process (V8 fatal error in a synchronous module
 * instantiation), so the pool ends no thread before it has said this.
 */
export interface WorkerLoaded {
  workerLoaded: number;
  /** The worker's boot line (see BootCall): boots take it instead of piscina's task queue. */
  boots?: MessagePort;
}

export function isWorkerLoaded(value: unknown): value is WorkerLoaded {
  return typeof value === 'object' && value !== null && typeof (value as Partial<WorkerLoaded>).workerLoaded === 'number';
}

/**
 * A boot sent straight to a worker's own MessagePort, and its answer. A boot is the one call a DNS
 * answer waits for, and piscina's task dispatch costs it 0.1-0.3 ms more than one message on a port
 * (docs/BENCHMARKS.md, "The bridge port and the worker hop"); every other call keeps piscina's queue and balancing.
 */
export interface BootCall {
  callId: number;
  req: PoolRequest & { op: 'boot' };
}

export interface BootAnswer {
  callId: number;
  res: PoolResponse;
}

export function isBootAnswer(value: unknown): value is BootAnswer {
  return typeof value === 'object' && value !== null && typeof (value as Partial<BootAnswer>).callId === 'number' && 'res' in value;
}

/**
 * Posted by a boot as soon as start() (or resume()) returned, while ready() still waits. It travels on another
 * port than the call's answer, so it may also arrive after it: the answer carries the handle too.
 */
export interface BootStarted {
  bootStarted: number;
  handle: BackendHandle;
}

export function isBootStarted(value: unknown): value is BootStarted {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<BootStarted>;
  return typeof v.bootStarted === 'number' && typeof v.handle === 'object' && v.handle !== null;
}

/** What a successful call of each op yields. */
export interface PoolResults {
  start: BackendHandle;
  boot: BackendHandle;
  prepare: BackendHandle | null;
  ready: null;
  stop: null;
  resume: BackendHandle | null;
  state: RuntimeState;
  exitReport: ExitReport;
}

export interface WireError {
  code: ErrorCode;
  message: string;
  details: Record<string, unknown>;
}

/**
 * `calledAt` / `settledAt`: when the worker invoked the backend and when the call resolved (epoch ms,
 * sub-ms precision; comparable across threads, unlike performance.now()), so the daemon measures its
 * own overhead on both sides of a boot (query -> start call; ready detected -> handover).
 */
export type PoolResponse<Op extends PoolOp = PoolOp> =
  | { ok: true; value: PoolResults[Op]; calledAt?: number; settledAt?: number }
  /** `started`: a boot whose ready() failed names what its start() left running. */
  | { ok: false; error: WireError; started?: BackendHandle };

/** Wall-clock time with sub-millisecond precision, comparable between threads. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The code an error without one gets, by the op that failed. */
const FALLBACK_CODE: Record<PoolOp, ErrorCode> = {
  start: 'BOOT_FAILED',
  boot: 'BOOT_FAILED',
  prepare: 'BOOT_FAILED',
  ready: 'BOOT_FAILED',
  stop: 'STOP_FAILED',
  resume: 'RESUME_FAILED',
  state: 'NOT_RUNNING',
  exitReport: 'NOT_RUNNING',
};

/** Details survive the thread hop only as JSON; anything else (functions, cycles) is dropped. */
function jsonSafe(details: unknown): Record<string, unknown> {
  if (typeof details !== 'object' || details === null) return {};
  try {
    return JSON.parse(JSON.stringify(details)) as Record<string, unknown>;
  } catch {
    return {};
  }
}


export function toWireError(err: unknown, op: PoolOp): WireError {
  const details = typeof err === 'object' && err !== null && 'details' in err ? jsonSafe((err as { details: unknown }).details) : {};
  const code = errorCode(err);
  if (code !== undefined) return { code, message: errorMessage(err), details };
  // A raw Node error (ENOENT, ...): keep its code as a detail, give it the op's stable code.
  const osCode = systemErrorCode(err);
  if (osCode !== undefined) details['osCode'] = osCode;
  return { code: FALLBACK_CODE[op], message: errorMessage(err), details };
}

export function fromWireError(wire: WireError): JitsuError {
  return new JitsuError(wire.code, wire.message, wire.details);
}

/** A response must look like one; a broken worker answer is an error, not a crash. */
export function isPoolResponse(value: unknown): value is PoolResponse {
  if (typeof value !== 'object' || value === null || !('ok' in value)) return false;
  const v = value as { ok: unknown; error?: { code?: unknown; message?: unknown } };
  if (v.ok === true) return 'value' in v;
  return v.ok === false && typeof v.error?.code === 'string' && typeof v.error.message === 'string';
}
