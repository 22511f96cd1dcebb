import { describe, expect, it } from 'vitest';
import type { RuntimeStatus } from '../services/runtime.js';
import { formatStatusTable } from './status-table.js';

function status(over: Partial<RuntimeStatus>): RuntimeStatus {
  return {
    service: 'www', backend: 'process', ip: '10.0.0.10', dns: ['www.example.test'], mask: 'none', state: 'stopped', suspended: false,
    bootCount: 0, bootFailures: 0, lastBootMs: null, lastError: null, idleSeconds: null, pid: null, standbyPid: null, restart: 'no', exits: 0, lastExit: null, failedUntil: null,
    ...over,
  };
}

describe('jitsu status table', () => {
  it('has a column per field, numbers right-aligned, - for nothing', () => {
    const table = formatStatusTable([status({ state: 'ready', bootCount: 3, lastBootMs: 152.34, idleSeconds: 4.2 }), status({ service: 'vm', backend: 'qemu', ip: '10.0.1.10' })]);
    expect(table).toBe(
      [
        'SERVICE  STATE    BACKEND  IP         BOOTS  LAST BOOT MS  IDLE S  LAST ERROR',
        'www      running  process  10.0.0.10      3         152.3     4.2  -',
        'vm       stopped  qemu     10.0.1.10      0             -       -  -',
        '',
      ].join('\n'),
    );
  });

  it('stays within 120 columns: long names and errors are cut with …', () => {
    const table = formatStatusTable([
      status({ service: 'a-very-long-service-name-that-goes-on-and-on', ip: '2001:db8:ffff:ffff:ffff:ffff:ffff:1', lastError: `boot failed: ${'x'.repeat(300)}\nsecond line` }),
      status({ state: 'stopped', suspended: true }),
    ]);
    const lines = table.trimEnd().split('\n');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(120);
    expect(lines[1]).toMatch(/^a-very-\S*… /);
    expect(lines[1]).toContain('2001:db8:ffff:ffff:ffff:ffff:ffff:1');
    expect(lines[1]).toMatch(/boot failed: x+/);
    expect(lines[2]).toContain('suspended');
  });
});
