import { describe, expect, it } from 'vitest';
import { silentLogger } from './log.js';
import { createNotifier, noNotifier, notifyMessage, serviceSummary, watchdogIntervalMs } from './notify.js';

describe('sd_notify messages', () => {
  it('are KEY=VALUE lines; a value never spans lines', () => {
    expect(notifyMessage({ READY: 1, STATUS: '2 services' })).toBe('READY=1\nSTATUS=2 services\n');
    expect(notifyMessage({ STATUS: 'a\nb\r\nc' })).toBe('STATUS=a b c\n');
  });

  it('ping the watchdog every WATCHDOG_USEC/2, only for our pid', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '41' }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({}, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42)).toBeUndefined();
  });

  it('summarise the services for systemctl status', () => {
    expect(serviceSummary([{ state: 'ready' }, { state: 'booting' }, { state: 'failed' }, { state: 'stopped' }])).toBe('4 services: 1 running, 1 booting, 1 failed');
    expect(serviceSummary([{ state: 'stopped' }])).toBe('1 service: 0 running, 0 booting, 0 failed');
  });

  it('go to NOTIFY_SOCKET; READY=1 carries the current status; a failing send never throws', () => {
    const sent: string[] = [];
    const notifier = createNotifier({ env: { NOTIFY_SOCKET: '@x' }, logger: silentLogger, send: (socket, data) => sent.push(`${socket} ${data.toString()}`) });
    notifier.trackStatus(() => '1 service: 1 running, 0 booting, 0 failed');
    notifier.ready();
    notifier.reloading();
    notifier.stopping();
    notifier.close();
    expect(sent[0]).toBe('@x READY=1\nSTATUS=1 service: 1 running, 0 booting, 0 failed\n');
    expect(sent[1]).toMatch(/^@x RELOADING=1\nMONOTONIC_USEC=\d+\n/);
    expect(sent[2]).toMatch(/^@x STOPPING=1\n/);
    const failing = createNotifier({ env: { NOTIFY_SOCKET: '/nowhere' }, logger: silentLogger, send: () => { throw new Error('ECONNREFUSED'); } });
    expect(() => failing.ready()).not.toThrow();
    expect(createNotifier({ env: {}, logger: silentLogger })).toBe(noNotifier);
  });
});
