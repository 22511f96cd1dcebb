import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logSince, logTail, startLog } from './logs.js';

describe('service logs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jt2-logs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('returns the last lines, looking into the rotated file when the current one is short', () => {
    const log = join(dir, 'a.log');
    writeFileSync(`${log}.1`, 'old1\nold2\nold3\n');
    writeFileSync(log, 'new1\nnew2\n');
    expect(logTail(log, 3)).toEqual(['old3', 'new1', 'new2']);
    expect(logTail(log, 1)).toEqual(['new2']);
    expect(logTail(join(dir, 'missing.log'))).toEqual([]);
  });

  it('reads only the end of a big log', () => {
    const log = join(dir, 'b.log');
    writeFileSync(log, 'x'.repeat(1 << 20) + '\nlast\n');
    expect(logTail(log, 2, 4096)).toEqual(['x'.repeat(4096 - 6), 'last']);
  });

  it('moves the previous boot\'s log aside so a failed boot quotes only its own lines', () => {
    const log = join(dir, 'c.log');
    writeFileSync(log, 'previous boot\n');
    writeFileSync(`${log}.1`, 'older\n');
    startLog(log);
    expect(existsSync(log)).toBe(false);
    expect(existsSync(`${log}.1`)).toBe(false);
    expect(readFileSync(`${log}.prev`, 'utf8')).toBe('previous boot\n');
    expect(logTail(log)).toEqual([]);
    startLog(join(dir, 'never-existed.log')); // first boot: nothing to move
  });

  it('quotes only what a boot wrote since its offset, or the tail after a rotation', () => {
    const log = join(dir, 'd.log');
    writeFileSync(log, 'earlier boot\n');
    const offset = 'earlier boot\n'.length;
    expect(logSince(log, offset)).toEqual([]);
    writeFileSync(log, 'earlier boot\nthis boot\n');
    expect(logSince(log, offset)).toEqual(['this boot']);
    writeFileSync(log, 'x\n');
    expect(logSince(log, offset)).toEqual(['x']);
    expect(logSince(join(dir, 'missing.log'), 0)).toEqual([]);
  });
});
