import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { capConsole, fileTail } from './console.js';

describe('console file', () => {
  it('tails the last lines, drops a cut first line, and caps the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jt4-con-'));
    try {
      const f = join(dir, 'console.log');
      expect(fileTail(f)).toEqual([]);
      writeFileSync(f, 'a\r\nb\n\nc\n');
      expect(fileTail(f, 2)).toEqual(['b', 'c']);
      writeFileSync(f, Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n') + '\n');
      const tail = fileTail(f, 3);
      expect(tail).toEqual(['line 1997', 'line 1998', 'line 1999']);
      capConsole(f, 100);
      expect(statSync(f).size).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
