import { describe, expect, it } from 'vitest';
import { activatedFds, parseDemoArgs } from './http.js';

describe('demo http service', () => {
  it('parses flags with defaults naming the service', () => {
    expect(parseDemoArgs([], { JITSU_SERVICE: 'web' })).toEqual({ port: 8080, host: '0.0.0.0', message: 'hello from web', delayMs: 0 });
    expect(parseDemoArgs(['--port', '80', '--message', 'hi there', '--delay-ms', '500'], {})).toMatchObject({ port: 80, message: 'hi there', delayMs: 500 });
  });
  it('uses LISTEN_FDS only when LISTEN_PID is ours', () => {
    expect(activatedFds({ LISTEN_FDS: '2', LISTEN_PID: '42' }, 42)).toEqual([3, 4]);
    expect(activatedFds({ LISTEN_FDS: '2', LISTEN_PID: '41' }, 42)).toEqual([]);
    expect(activatedFds({ LISTEN_FDS: 'x', LISTEN_PID: '42' }, 42)).toEqual([]);
    expect(activatedFds({}, 42)).toEqual([]);
  });
});
