import { describe, expect, it } from 'vitest';
import { wasActive } from './activity.js';

describe('idle accounting', () => {
  it('is active with an open connection or moved bytes, not on the first sample alone', () => {
    expect(wasActive(undefined, { bytes: 100, connections: 0 })).toBe(false);
    expect(wasActive({ bytes: 100, connections: 0 }, { bytes: 100, connections: 0 })).toBe(false);
    expect(wasActive({ bytes: 100, connections: 0 }, { bytes: 160, connections: 0 })).toBe(true);
    expect(wasActive({ bytes: 100, connections: 0 }, { bytes: 100, connections: 1 })).toBe(true);
    expect(wasActive(undefined, { bytes: undefined, connections: 3 })).toBe(true);
    expect(wasActive({ bytes: undefined, connections: undefined }, { bytes: undefined, connections: undefined })).toBe(false);
  });
});
