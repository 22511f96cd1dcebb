import { describe, expect, it } from 'vitest';
import { createLogger, formatLine, journalStyle } from './log.js';

describe('log line styles', () => {
  it('logfmt by default, one JSON object per line with --log-format json', () => {
    expect(formatLine('info', 'jitsu ready', { dns: '127.0.0.1:53', services: 2, gone: undefined })).toMatch(/^ts=\S+Z level=info msg="jitsu ready" dns=127.0.0.1:53 services=2$/);
    const json = JSON.parse(formatLine('warn', 'x "y"', { n: 1, ok: true, none: null, gone: undefined }, { format: 'json', timestamps: true, priorityPrefix: false })) as Record<string, unknown>;
    expect(json).toEqual({ ts: expect.stringMatching(/Z$/), level: 'warn', msg: 'x "y"', n: 1, ok: true, none: null });
  });

  it('under the journal: no timestamp, the syslog priority in front', () => {
    const style = journalStyle('logfmt', '64:1234', { dev: 64, ino: 1234 });
    expect(style).toEqual({ format: 'logfmt', timestamps: false, priorityPrefix: true });
    expect(formatLine('error', 'boom', {}, style)).toBe('<3>level=error msg=boom');
    expect(formatLine('debug', 'd', {}, style)).toBe('<7>level=debug msg=d');
    expect(formatLine('info', 'i', {}, { ...style, format: 'json' })).toBe('<6>{"level":"info","msg":"i"}');
    // An inherited JOURNAL_STREAM naming another stream, or none: plain lines.
    expect(journalStyle('logfmt', '64:1234', { dev: 64, ino: 99 }).timestamps).toBe(true);
    expect(journalStyle('json', undefined, { dev: 64, ino: 1234 })).toEqual({ format: 'json', timestamps: true, priorityPrefix: false });
  });

  it('the level changes live for the logger and its children', () => {
    const lines: string[] = [];
    const logger = createLogger('info', (l) => lines.push(l));
    const child = logger.child({ service: 'a' });
    child.debug('hidden');
    logger.setLevel('debug');
    child.debug('shown');
    expect(child.enabled('debug')).toBe(true);
    logger.setLevel('error');
    logger.warn('hidden too');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('msg=shown service=a');
  });
});
