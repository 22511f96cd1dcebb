import type { Counter, Histogram, MetricsRegistry } from '../observe/metrics.js';

export interface ServiceMetrics {
  boots: Counter;
  stops: Counter;
  /** Unplanned ends after ready, by service and reason (exited|failed|killed|panicked|vanished). */
  exits: Counter;
  restarts: Counter;
  crashLoops: Counter;
  bootSeconds: Histogram;
  /** Daemon's own overhead: query -> backend start call; ready -> masked connections handed over. */
  orchestration: Histogram;
}

const FINE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1];

export function serviceMetrics(registry: MetricsRegistry): ServiceMetrics {
  return {
    boots: registry.counter('jitsu_boots_total', 'Boots (and resumes) by service and result (ok|failed)'),
    stops: registry.counter('jitsu_stops_total', 'Stops by service and mode'),
    exits: registry.counter('jitsu_service_exits_total', 'Services that ended on their own after ready, by service and reason'),
    restarts: registry.counter('jitsu_service_restarts_total', 'Automatic restarts by the restart policy, by service'),
    crashLoops: registry.counter('jitsu_service_crash_loops_total', 'Times a service hit its start limit and was failed for a cool-down'),
    bootSeconds: registry.histogram('jitsu_boot_seconds', 'Summon to ready, by backend'),
    orchestration: registry.histogram('jitsu_orchestration_seconds', "The daemon's own overhead by step", FINE_BUCKETS),
  };
}
