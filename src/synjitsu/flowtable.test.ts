import { describe, expect, it } from 'vitest';
import { endpointKey, FlowBudget, seq } from './flowtable.js';
import { resolveLimits } from './limits.js';

describe('FlowBudget', () => {
  it('bounds flows in total and per service, and says why', () => {
    const b = new FlowBudget(resolveLimits({ maxFlows: 3, maxFlowsPerService: 2 }));
    expect(b.admitFlow(0)).toBeUndefined();
    expect(b.admitFlow(1)).toBeUndefined();
    expect(b.admitFlow(2)).toBe('max-flows-per-service');
    expect(b.admitFlow(0)).toBeUndefined();
    expect(b.admitFlow(0)).toBe('max-flows');
    b.releaseFlow();
    expect(b.admitFlow(0)).toBeUndefined();
    expect(b.flows).toBe(3);
  });
  it('bounds parked SYNs', () => {
    const b = new FlowBudget(resolveLimits({ maxParked: 2, maxParkedPerService: 1 }));
    expect(b.admitParked(0)).toBeUndefined();
    expect(b.admitParked(1)).toBe('max-parked-per-service');
    expect(b.admitParked(0)).toBeUndefined();
    expect(b.admitParked(0)).toBe('max-parked');
    b.releaseParked(2);
    expect(b.parked).toBe(0);
  });
  it('grants buffer bytes up to the per-flow and total limits', () => {
    const b = new FlowBudget(resolveLimits({ maxFlowBuffer: 100, maxTotalBuffer: 150 }));
    expect(b.take(0, 80)).toBe(80);
    expect(b.take(80, 80)).toBe(20);
    expect(b.space(0)).toBe(50);
    expect(b.take(0, 80)).toBe(50);
    expect(b.take(0, 1)).toBe(0);
    b.give(150);
    expect(b.bufferedBytes).toBe(0);
  });
  it('rejects nonsense limits with the key name', () => {
    expect(() => resolveLimits({ maxFlows: 0 })).toThrow(/maxFlows/);
  });
});

describe('sequence arithmetic', () => {
  it('wraps modulo 2^32', () => {
    expect(seq.add(0xffffffff, 2)).toBe(1);
    expect(seq.lt(0xfffffff0, 5)).toBe(true);
    expect(seq.diff(5, 0xfffffff0)).toBe(21);
    expect(seq.le(7, 7)).toBe(true);
  });
  it('keys endpoints exactly', () => {
    expect(endpointKey(0xffffffff, 65535)).toBe(0xffffffff * 65536 + 65535);
    expect(endpointKey(1, 0)).not.toBe(endpointKey(0, 65536 % 65536));
  });
});
