/**
 * The control socket: `STATE_DIR/control.sock`, an AF_UNIX stream socket (mode 0600 in the 0700
 * state dir: root only) through which `jitsu status|start|stop|reload` talk to the running daemon.
 * One request per connection, one JSON object per line each way.
 */
import { join } from 'node:path';
import type { DaemonStatus } from '../daemon.js';
import type { ServicePlan } from '../services/reload-plan.js';
import type { RuntimeStatus } from '../services/runtime.js';
import type { KeptOption } from '../config/reload.js';

export const CONTROL_SOCKET = 'control.sock';

export function controlSocketPath(stateDir: string): string {
  return join(stateDir, CONTROL_SOCKET);
}

export type ControlRequest = { command: 'status' } | { command: 'reload' } | { command: 'start'; service: string } | { command: 'stop'; service: string };

/** What a reload did; `ok: false` when the new configuration was refused (the old one keeps serving). */
export type ReloadReport =
  | ({ ok: true; kept: KeptOption[]; options: string[] } & ServicePlan)
  | { ok: false; error: string };

export interface ControlResults {
  /** The same object `/status` serves over HTTP. */
  status: DaemonStatus;
  reload: ReloadReport;
  start: RuntimeStatus;
  stop: RuntimeStatus;
}

export type ControlResponse<C extends keyof ControlResults = keyof ControlResults> =
  | { ok: true; result: ControlResults[C] }
  | { ok: false; error: string; code?: string };

/** A request line is small; anything longer is not ours. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** An answer (a status of many services) is bounded too. */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
