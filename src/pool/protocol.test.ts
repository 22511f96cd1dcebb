import { describe, expect, it } from 'vitest';
import { JitsuError, errorCode, systemErrorCode } from '../errors.js';
import { fromWireError, isPoolResponse, toWireError } from './protocol.js';

describe('pool protocol', () => {
  it('keeps code, message and details of a JitsuError across a structured clone', () => {
    const err = new JitsuError('BOOT_FAILED', 'boom', { service: 'web', exitCode: 3, logTail: ['a', 'b'] });
    const wire = structuredClone(toWireError(err, 'ready'));
    const back = fromWireError(wire);
    expect(back).toBeInstanceOf(JitsuError);
    expect(back.code).toBe('BOOT_FAILED');
    expect(back.message).toBe('boom');
    expect(back.details).toEqual({ service: 'web', exitCode: 3, logTail: ['a', 'b'] });
  });
  it('gives code-less errors the code of the op that failed and drops non-JSON details', () => {
    expect(toWireError(new Error('x'), 'stop')).toEqual({ code: 'STOP_FAILED', message: 'x', details: {} });
    expect(toWireError('plain', 'start').code).toBe('BOOT_FAILED');
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(toWireError(new JitsuError('NOT_RUNNING', 'y', cyclic), 'state').details).toEqual({});
    // an errno-style code from Node is not a Jitsu code: it becomes a detail
    const errno = Object.assign(new Error('nope'), { code: 'ENOENT' });
    expect(toWireError(errno, 'start')).toEqual({ code: 'BOOT_FAILED', message: 'nope', details: { osCode: 'ENOENT' } });
    expect(toWireError(new Error('x'), 'resume').code).toBe('RESUME_FAILED');
  });
  it('recognises well-formed responses only', () => {
    expect(isPoolResponse({ ok: true, value: null })).toBe(true);
    expect(isPoolResponse({ ok: false, error: { code: 'ABORTED', message: 'm', details: {} } })).toBe(true);
    expect(isPoolResponse({ ok: false })).toBe(false);
    expect(isPoolResponse(undefined)).toBe(false);
    expect(isPoolResponse({ ok: true })).toBe(false);
  });
});

describe('error codes', () => {
  it('are only ours: a system error is no Jitsu code, and an unknown string none at all', () => {
    const enoent = Object.assign(new Error('nope'), { code: 'ENOENT' });
    expect(errorCode(enoent)).toBeUndefined();
    expect(systemErrorCode(enoent)).toBe('ENOENT');
    expect(errorCode({ code: 'MADE_UP' })).toBeUndefined();
    expect(errorCode(new JitsuError('BOOT_FAILED', 'x'))).toBe('BOOT_FAILED');
    expect(systemErrorCode(new JitsuError('BOOT_FAILED', 'x'))).toBeUndefined();
  });
});
