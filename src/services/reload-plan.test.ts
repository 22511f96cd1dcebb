import { describe, expect, it } from 'vitest';
import { planServices } from './reload-plan.js';

describe('service reload plan', () => {
  it('sorts services into added, removed, changed and unchanged, in the new order', () => {
    const current = new Map([['keep', 'k1'], ['change', 'c1'], ['gone', 'g1']]);
    const next = new Map([['new', 'n1'], ['change', 'c2'], ['keep', 'k1']]);
    expect(planServices(current, next)).toEqual({ added: ['new'], removed: ['gone'], changed: ['change'], unchanged: ['keep'] });
    expect(planServices(current, current)).toEqual({ added: [], removed: [], changed: [], unchanged: ['keep', 'change', 'gone'] });
  });
});
