/**
 * Restart policy and crash-loop protection, with systemd's meaning: `restart=no` (the default:
 * the next query or SYN boots it again), `on-failure` (back at once when it failed: a non-zero
 * status, a signal, a panic, a failed boot), `always` (back at once after any unplanned end, a clean
 * exit included). Whatever the policy, a service that ends unplanned `burst` times within
 * `intervalMs` is `failed` for `cooldownMs`: queries get SERVFAIL at once instead of one more boot.
 * Pure bookkeeping on a clock the caller gives, so it is tested without waiting.
 */
import type { ExitReason } from '../backends/backend.js';

export type RestartPolicy = 'no' | 'on-failure' | 'always';
export const RESTART_POLICIES: readonly RestartPolicy[] = ['no', 'on-failure', 'always'];

export type IdleRule = 'traffic' | 'queries';
export const IDLE_RULES: readonly IdleRule[] = ['traffic', 'queries'];

export interface SupervisionPolicy {
  restart: RestartPolicy;
  /** First delay before an automatic restart; doubled for each further failure in the window. */
  restartDelayMs: number;
  startLimitBurst: number;
  startLimitIntervalMs: number;
  cooldownMs: number;
  idle: IdleRule;
}

/** Longest automatic-restart delay, however many failures came before. */
export const MAX_RESTART_DELAY_MS = 30_000;

/** An unplanned end: a failed boot, or an exit after ready. */
export type Ending = { kind: 'boot-failed' } | { kind: 'exited'; reason: ExitReason };

export type Verdict =
  | { action: 'wait' }
  | { action: 'restart'; delayMs: number }
  | { action: 'cool-down'; untilMs: number; failures: number };

export class StartLimiter {
  /** Times of the unplanned ends inside the window, oldest first; never more than `burst`. */
  private readonly ends: number[] = [];
  private coolingUntil: number | undefined;

  constructor(private readonly policy: SupervisionPolicy) {}

  /** Record an end at `now` and decide what follows. */
  record(ending: Ending, now: number): Verdict {
    const windowStart = now - this.policy.startLimitIntervalMs;
    while (this.ends.length > 0 && this.ends[0]! <= windowStart) this.ends.shift();
    this.ends.push(now);
    if (this.ends.length > this.policy.startLimitBurst) this.ends.shift();
    if (this.ends.length >= this.policy.startLimitBurst) {
      const failures = this.ends.length;
      this.ends.length = 0;
      this.coolingUntil = now + this.policy.cooldownMs;
      return { action: 'cool-down', untilMs: this.coolingUntil, failures };
    }
    if (!wantsRestart(this.policy.restart, ending)) return { action: 'wait' };
    const delayMs = Math.min(MAX_RESTART_DELAY_MS, this.policy.restartDelayMs * 2 ** (this.ends.length - 1));
    return { action: 'restart', delayMs };
  }

  /** Until when the service is failed (ms on the caller's clock), or undefined once the cool-down is over. */
  coolingDownUntil(now: number): number | undefined {
    if (this.coolingUntil !== undefined && now >= this.coolingUntil) this.coolingUntil = undefined;
    return this.coolingUntil;
  }

  /** An operator's (or a reload's) fresh start: forget past failures. */
  reset(): void {
    this.ends.length = 0;
    this.coolingUntil = undefined;
  }
}

export function wantsRestart(policy: RestartPolicy, ending: Ending): boolean {
  if (policy === 'always') return true;
  if (policy === 'no') return false;
  return ending.kind === 'boot-failed' || ending.reason !== 'exited';
}
