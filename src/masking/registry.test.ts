import { describe, expect, it } from 'vitest';
import { MASK_MODES, maskStrategy, supportedMasks } from './registry.js';

describe('masking strategies', () => {
  it('are all registered, each under its own name', () => {
    expect(MASK_MODES).toEqual(['none', 'activate', 'park', 'handshake']);
    for (const mode of MASK_MODES) expect(maskStrategy(mode).name).toBe(mode);
  });

  it('follow from what a backend can do', () => {
    expect(supportedMasks({ prebind: true, hold: true })).toEqual(['none', 'activate', 'park', 'handshake']);
    expect(supportedMasks({ prebind: false, hold: true })).toEqual(['none', 'park', 'handshake']);
    expect(supportedMasks({ prebind: false, hold: false })).toEqual(['none']);
  });

  it('say what the daemon does for each: answer early, run on the packet path, bring the link up', () => {
    const table = MASK_MODES.map((m) => {
      const s = maskStrategy(m);
      return [m, s.answersBeforeReady, s.onPacketPath, s.holdsConnections, s.linkUp, s.delaysAnswer];
    });
    expect(table).toEqual([
      ['none', false, false, false, 'start', true],
      ['activate', false, false, false, 'start', false],
      ['park', true, true, true, 'ready', false],
      ['handshake', true, true, true, 'ready', false],
    ]);
  });

  it('name the fix when the keys make a strategy impossible', () => {
    expect(maskStrategy('activate').check?.({}, 'web')).toBe('mask=activate needs the sockets to pass: add port=N to service web');
    expect(maskStrategy('activate').check?.({ port: ['80'] }, 'web')).toBeUndefined();
  });
});
