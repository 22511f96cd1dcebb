import { describe, expect, it } from 'vitest';
import { abortCode, abortError, callAborted } from './abort.js';
import { pollPacer, pollUntil } from './readiness.js';

const timedOutSignal = (): AbortSignal => AbortSignal.abort(new DOMException('deadline', 'TimeoutError'));
const cancelled = (): AbortSignal => AbortSignal.abort(new Error('shutdown'));

describe('abort mapping', () => {
  it('a deadline is the call\'s own failure, anything else ABORTED', () => {
    expect(abortCode(timedOutSignal(), 'start')).toBe('BOOT_TIMEOUT');
    expect(abortCode(timedOutSignal(), 'resume')).toBe('BOOT_TIMEOUT');
    expect(abortCode(timedOutSignal(), 'ready')).toBe('READY_TIMEOUT');
    expect(abortCode(timedOutSignal(), 'stop')).toBe('STOP_FAILED');
    for (const call of ['start', 'ready', 'stop', 'resume'] as const) expect(abortCode(cancelled(), call)).toBe('ABORTED');
  });
  it('words the error by what happened', () => {
    expect(abortError(timedOutSignal(), 'ready', { timeout: 'no frame', aborted: 'given up' }, {}).message).toBe('no frame');
    expect(abortError(cancelled(), 'ready', { timeout: 'no frame', aborted: 'given up' }, {}).message).toBe('given up');
    expect(abortError(cancelled(), 'ready', { timeout: 'no frame' }, {}).message).toBe('no frame');
    expect(callAborted('xl', 'stop', 'web', timedOutSignal()).message).toBe('xl stop timed out for service web');
    expect(callAborted('xl', 'stop', 'web', cancelled()).details).toEqual({ service: 'web' });
  });
});

describe('poll schedule', () => {
  it('spins on the event loop, then doubles its timers up to the cap', async () => {
    const waits: number[] = [];
    const pause = pollPacer({ spins: 2, firstMs: 1, maxMs: 4 }, undefined, async (ms) => void waits.push(ms));
    for (let i = 0; i < 6; i++) await pause();
    expect(waits).toEqual([1, 2, 4, 4]);
  });
  it('a pause rejects once the signal aborts', async () => {
    const pause = pollPacer({ spins: 1, firstMs: 1, maxMs: 1 }, cancelled());
    await expect(pause()).rejects.toThrow('shutdown');
  });
  it('pollUntil: true once the check holds, false at the deadline', async () => {
    let n = 0;
    expect(await pollUntil(() => ++n >= 3, 1000, { firstMs: 1, maxMs: 1 })).toBe(true);
    expect(await pollUntil(() => false, 20, { firstMs: 5, maxMs: 5 })).toBe(false);
    expect(await pollUntil(() => false, 1000, { firstMs: 5, maxMs: 5 }, cancelled())).toBe(false);
  });
});
