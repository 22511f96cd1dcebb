import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { decodeWaitStatus, isAlive, liveness, parseProcStat, readProcStat } from './proc.js';

describe('/proc parsing', () => {
  it('parses /proc/PID/stat even when the command name holds ") ("', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'Z';
    fields[22 - 3] = '987654';
    fields[52 - 3] = '768';
    const stat = parseProcStat(`42 (a) (b c) ${fields.join(' ')}\n`);
    expect(stat).toEqual({ state: 'Z', startTime: 987654, exitStatus: 768 });
    expect(decodeWaitStatus(768)).toEqual({ code: 3, signal: null });
    expect(decodeWaitStatus(9)).toEqual({ code: null, signal: 9 });
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it('tells our own live process from a reused pid', () => {
    const me = readProcStat(process.pid)!;
    expect(me.startTime).toBeGreaterThan(0);
    expect(liveness(process.pid, me.startTime).state).toBe('alive');
    expect(liveness(process.pid, me.startTime + 1).state).toBe('gone');
    const child = spawnSync('true');
    expect(liveness(child.pid!, 0).state).toBe('gone');
  });
});

describe('process identity', () => {
  it('knows this process, rejects a wrong start time and absent pids', () => {
    const st = readProcStat(process.pid)!;
    expect(st.startTime).toBeGreaterThan(0);
    expect(isAlive(process.pid, st.startTime)).toBe(true);
    expect(isAlive(process.pid, st.startTime + 1)).toBe(false);
    expect(isAlive(undefined, undefined)).toBe(false);
    expect(isAlive(2 ** 22 + 7, undefined)).toBe(false);
  });
});
