import { describe, expect, it } from 'vitest';
import { errorCode } from '../errors.js';
import { loadNative, nativeAvailable } from './index.js';

describe('native loader', () => {
  it('loads the addon once built, or says how to build it', () => {
    if (nativeAvailable()) {
      const addon = loadNative();
      expect(addon.version).toBeGreaterThanOrEqual(2);
      expect(typeof addon.PacketSocket).toBe('function');
      expect(addon.ifIndex('lo')).toBeGreaterThan(0);
      expect(addon.ifIndex('jt3-no-such-link')).toBe(0);
      expect(loadNative()).toBe(addon);
    } else {
      let caught: unknown;
      try {
        loadNative();
      } catch (err) {
        caught = err;
      }
      expect(errorCode(caught)).toBe('NATIVE_UNAVAILABLE');
      expect(String((caught as Error).message)).toMatch(/node-gyp/);
    }
  });
  it('rejects bad constructor input with a TypeError, not a crash', () => {
    if (!nativeAvailable()) return;
    const { PacketSocket } = loadNative();
    expect(() => new PacketSocket(undefined as never)).toThrow(TypeError);
    expect(() => new PacketSocket({} as never)).toThrow(/iface/);
  });
});
