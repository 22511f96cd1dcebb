import { describe, expect, it } from 'vitest';
import { reloadOptions } from './reload.js';
import type { Config } from './types.js';
import { validateConfig } from './validate.js';

function config(flags: Record<string, string>, services = ['dns=www.example.test,ip=10.0.0.10,exec=/bin/true']): Config {
  return validateConfig({ flags: new Map(Object.entries(flags).map(([k, v]) => [k, [v]])), services: services.map((s) => s.split(',').map((kv) => kv.split('=') as [string, string])) }, { defaultForwarders: () => ['192.0.2.53'] });
}

describe('reload options', () => {
  it('keeps restart-only options at their running value and names them', () => {
    const running = config({ port: '5353', ttl: '60', workers: '2' });
    const { effective, kept, changed } = reloadOptions(running, config({ port: '5354', ttl: '30', workers: '4', metrics: '127.0.0.1:9153' }));
    expect(effective).toMatchObject({ port: 5353, workers: 2, ttl: 30 });
    expect(effective.metrics).toBeUndefined();
    expect(kept).toEqual([
      { option: '--port', running: '5353', wanted: '5354' },
      { option: '--workers', running: '2', wanted: '4' },
      { option: '--metrics', running: 'off', wanted: '127.0.0.1:9153' },
    ]);
    expect(changed).toEqual(['ttl', 'idle-timeout']);
  });

  it('an identical file changes nothing', () => {
    const running = config({ forwarder: '9.9.9.9', 'log-level': 'debug' });
    expect(reloadOptions(running, config({ forwarder: '9.9.9.9', 'log-level': 'debug' }))).toEqual({ effective: running, kept: [], changed: [] });
    expect(reloadOptions(running, config({ forwarder: '1.1.1.1', 'log-level': 'info' })).changed).toEqual(['forwarder', 'log-level']);
  });
});
