import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../config/supervision-keys.js';
import { MAX_RESTART_DELAY_MS, StartLimiter, wantsRestart, type SupervisionPolicy } from './policy.js';

const policy = (over: Partial<SupervisionPolicy> = {}): SupervisionPolicy => ({ ...DEFAULT_POLICY, ...over });
const crash = { kind: 'exited', reason: 'killed' } as const;
const cleanExit = { kind: 'exited', reason: 'exited' } as const;

describe('restart policy', () => {
  it('has systemd meanings: no never, on-failure on failures only, always on any end', () => {
    expect(wantsRestart('no', crash)).toBe(false);
    expect(wantsRestart('on-failure', crash)).toBe(true);
    expect(wantsRestart('on-failure', { kind: 'boot-failed' })).toBe(true);
    expect(wantsRestart('on-failure', cleanExit)).toBe(false);
    expect(wantsRestart('always', cleanExit)).toBe(true);
  });
});

describe('StartLimiter', () => {
  it('doubles the restart delay per failure inside the window, capped', () => {
    const limiter = new StartLimiter(policy({ restart: 'always', restartDelayMs: 100, startLimitBurst: 100, startLimitIntervalMs: 1e9 }));
    const delays = [0, 1, 2, 3].map((t) => limiter.record(crash, t));
    expect(delays).toEqual([100, 200, 400, 800].map((delayMs) => ({ action: 'restart', delayMs })));
    for (let t = 4; t < 20; t++) limiter.record(crash, t);
    expect(limiter.record(crash, 21)).toEqual({ action: 'restart', delayMs: MAX_RESTART_DELAY_MS });
  });

  it('waits for the next query under restart=no', () => {
    expect(new StartLimiter(policy()).record(crash, 0)).toEqual({ action: 'wait' });
  });

  it('fails the service for the cool-down after burst ends within the interval, then lets it go', () => {
    const limiter = new StartLimiter(policy({ startLimitBurst: 3, startLimitIntervalMs: 10_000, cooldownMs: 30_000 }));
    expect(limiter.record(crash, 0).action).toBe('wait');
    expect(limiter.record({ kind: 'boot-failed' }, 1000).action).toBe('wait');
    expect(limiter.record(crash, 2000)).toEqual({ action: 'cool-down', untilMs: 32_000, failures: 3 });
    expect(limiter.coolingDownUntil(31_999)).toBe(32_000);
    expect(limiter.coolingDownUntil(32_000)).toBeUndefined();
    // The count starts afresh after a cool-down.
    expect(limiter.record(crash, 33_000).action).toBe('wait');
  });

  it('forgets ends older than the interval', () => {
    const limiter = new StartLimiter(policy({ startLimitBurst: 3, startLimitIntervalMs: 10_000 }));
    limiter.record(crash, 0);
    limiter.record(crash, 5000);
    expect(limiter.record(crash, 10_001).action).toBe('wait'); // the one at 0 fell out
    expect(limiter.record(crash, 10_002).action).toBe('cool-down');
  });
});
