/**
 * One cold summon measured end to end: wait until the service is stopped (the daemon's idle reaper
 * stops it between runs), then the probe client resolves its name (which boots it), connects and
 * reads the first byte. The daemon's own overhead per run comes from /metrics: the increase of the
 * `jitsu_orchestration_seconds` sum for each step over the run is exactly that run's observation.
 */
import type { ProbeClient, ProbeReply } from './client.js';
import { metricValue, type RunningDaemon, type ServiceStatusDoc } from './daemon.js';
import { sleep } from './proc.js';

/** Pause between a service showing `stopped` and the next summon. */
export const SETTLE_MS = 100;

export const ORCHESTRATION_STEPS = ['query_to_start', 'ready_to_handover'] as const;
export type OrchestrationStep = (typeof ORCHESTRATION_STEPS)[number];

export interface SummonSample {
  reply: ProbeReply;
  /** ms; the daemon's summon-to-ready for this boot (/status lastBootMs). */
  bootMs: number | null;
  /** seconds per step, present when the daemon observed the step during this run. */
  orchestration: Partial<Record<OrchestrationStep, number>>;
}

export async function serviceStatus(daemon: RunningDaemon, service: string): Promise<ServiceStatusDoc> {
  const st = await daemon.status();
  const s = st.services.find((x) => x.service === service);
  if (!s) throw new Error(`service ${service} missing from /status`);
  return s;
}

/** Do these service keys ask the backend to prepare the next start while stopped? */
export function preparesAhead(serviceKeys: string): boolean {
  return /(^|,)(precreate=(on|warm)|prespawn=(on|warm))(,|$)/.test(serviceKeys);
}

/**
 * Until the service is stopped and, with `standby`, holds what its backend prepares ahead
 * (precreate, prespawn): a summon before that waits for the prepare, and measures it.
 */
export async function waitStopped(daemon: RunningDaemon, service: string, timeoutMs: number, standby = false): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await serviceStatus(daemon, service);
    if (s.state === 'stopped' && (!standby || s.standbyPid !== null)) return;
    if (Date.now() > until) {
      const what = s.state === 'stopped' ? 'stopped without a standby (prepare)' : `still ${s.state} (idle reaper)`;
      throw new Error(`service ${service} ${what} after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

function orchestrationSums(text: string): Record<string, { sum: number; count: number }> {
  const out: Record<string, { sum: number; count: number }> = {};
  for (const step of ORCHESTRATION_STEPS) {
    out[step] = {
      sum: metricValue(text, 'jitsu_orchestration_seconds_sum', { step }) ?? 0,
      count: metricValue(text, 'jitsu_orchestration_seconds_count', { step }) ?? 0,
    };
  }
  return out;
}

export async function coldSummon(
  daemon: RunningDaemon,
  client: ProbeClient,
  service: string,
  cmd: Record<string, unknown>,
  opts: { stoppedTimeoutMs: number; runTimeoutMs: number; standby?: boolean },
): Promise<SummonSample> {
  await waitStopped(daemon, service, opts.stoppedTimeoutMs, opts.standby);
  // `stopped` shows before the stop's own bookkeeping (state file) finishes; a query in that window
  // waits for it. Measure a cold start of a service that is stopped, not one still stopping.
  await sleep(SETTLE_MS);
  const before = orchestrationSums(await daemon.metricsText());
  const reply = await client.send({ op: 'firstbyte', timeoutMs: opts.runTimeoutMs, ...cmd }, opts.runTimeoutMs + 5000);
  // A masked boot may finish after the first byte; let the daemon record it.
  let status = await serviceStatus(daemon, service);
  for (let i = 0; i < 250 && status.state === 'booting'; i++) {
    await sleep(20);
    status = await serviceStatus(daemon, service);
  }
  const after = orchestrationSums(await daemon.metricsText());
  const orchestration: Partial<Record<OrchestrationStep, number>> = {};
  for (const step of ORCHESTRATION_STEPS) {
    // Exactly one observation in this run: its value is the increase of the sum.
    if (after[step]!.count - before[step]!.count === 1) orchestration[step] = after[step]!.sum - before[step]!.sum;
  }
  return { reply, bootMs: status.lastBootMs, orchestration };
}
