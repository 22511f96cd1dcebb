import { describe, expect, it } from 'vitest';
import { sourceFromText } from '../dns/source.js';
import { errorCode, JitsuError } from '../errors.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { BootGate } from './boot-gate.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('BootGate', () => {
  it('admits at most maxBooting boots at once, refuses the rest at once, and frees a slot when a boot settles', async () => {
    const metrics = new MetricsRegistry();
    const gate = new BootGate({ maxBooting: 2, summonRate: 0, metrics });
    const boots = [deferred(), deferred(), deferred()];
    const a = gate.start('a', undefined, () => boots[0]!.promise);
    const b = gate.start('b', undefined, () => boots[1]!.promise);
    const c = gate.start('c', undefined, () => boots[2]!.promise);
    expect(a).toBeInstanceOf(Promise);
    expect(b).toBeInstanceOf(Promise);
    expect(c).toBeInstanceOf(JitsuError);
    expect(errorCode(c)).toBe('BOOT_REFUSED');
    expect((c as JitsuError).message).toMatch(/^c: boot not started: 2 boots are already under way \(--max-booting\)/);
    expect(gate.booting).toBe(2);
    boots[0]!.reject(new Error('boot failed'));
    await expect(a).rejects.toThrow('boot failed');
    expect(gate.booting).toBe(1);
    boots[1]!.resolve();
    await b;
    expect(gate.booting).toBe(0);
    expect(gate.start('c', undefined, () => Promise.resolve())).toBeInstanceOf(Promise);
    expect(metrics.render()).toMatch(/jitsu_summons_refused_total\{reason="max_booting"\} 1/);
  });

  it('limits new boots per client prefix, not other clients, not SYN/restart summons', () => {
    const metrics = new MetricsRegistry();
    const gate = new BootGate({ maxBooting: 100, summonRate: 3, metrics });
    const at = (address: string, receivedAt: number) => ({ ...sourceFromText(address), receivedAt });
    const client = at('203.0.113.9', 1000);
    const neighbour = at('203.0.113.77', 1000); // same /24
    const other = at('198.51.100.1', 1000);
    const ok = (s: ReturnType<typeof sourceFromText> | undefined): boolean => gate.start('svc', s, () => new Promise<void>(() => {})) instanceof Promise;
    expect([ok(client), ok(client), ok(neighbour), ok(client)]).toEqual([true, true, true, false]);
    expect(ok(other)).toBe(true);
    expect(ok(undefined)).toBe(true);
    expect(ok(at('203.0.113.9', 2000))).toBe(true); // a second later: refilled
    expect(metrics.render()).toMatch(/jitsu_summons_refused_total\{reason="client_rate"\} 1/);
  });

  it('does not spend a client token on a boot the daemon-wide cap refuses', () => {
    const gate = new BootGate({ maxBooting: 1, summonRate: 1, metrics: new MetricsRegistry() });
    const client = sourceFromText('203.0.113.9');
    const hold = deferred();
    expect(gate.start('a', undefined, () => hold.promise)).toBeInstanceOf(Promise);
    expect(gate.start('b', client, () => Promise.resolve())).toBeInstanceOf(JitsuError);
    hold.resolve();
    return hold.promise.then(async () => {
      await Promise.resolve();
      expect(gate.start('b', client, () => Promise.resolve())).toBeInstanceOf(Promise);
    });
  });
});
