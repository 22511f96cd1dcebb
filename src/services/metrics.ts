import type { Counter, Histogram, MetricsRegistry } from '../observe/metrics.js';

export interface ServiceMetrics {
  boots: Counter;
  stops: Counter;
  bootSeconds: Histogram;
  /** Daemon's own overhead: query -> backend start call; ready -> masked connections handed over. */
  orchestration: Histogram;
}

const FINE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1];

export function serviceMetrics(registry: MetricsRegistry): ServiceMetrics {
  return {
    boots: registry.counter('jitsu_boots_total', 'Boots (and resumes) by service and result (ok|failed)'),
    stops: registry.counter('jitsu_stops_total', 'Stops by service and mode'),
    bootSeconds: registry.histogram('jitsu_boot_seconds', 'Summon to ready, by backend'),
    orchestration: registry.histogram('jitsu_orchestration_seconds', "The daemon's own overhead by step", FINE_BUCKETS),
  };
}
