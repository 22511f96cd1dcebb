import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSmallFile, removeFile } from './files.js';

const dir = mkdtempSync(join(tmpdir(), 'jitsu-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readSmallFile', () => {
  it('reads what readFileSync reads, at and across the one-page boundary', () => {
    for (const size of [0, 1, 4095, 4096, 4097, 8192, 20_000]) {
      const path = join(dir, `f${size}`);
      writeFileSync(path, Buffer.from(Array.from({ length: size }, (_, i) => 97 + (i % 26))));
      expect(readSmallFile(path, 'latin1')).toBe(readFileSync(path, 'latin1'));
    }
  });

  it('reads /proc files that report size 0, and seq_files longer than a page, to their end', () => {
    expect(readSmallFile('/proc/self/stat', 'latin1').split(' ')[0]).toBe(String(process.pid));
    const maps = readSmallFile('/proc/self/maps', 'latin1');
    expect(maps.length).toBeGreaterThan(4096);
    expect(maps.endsWith('\n')).toBe(true);
    expect(maps.split('\n').length).toBeGreaterThan(10);
  });

  it('keeps utf8 text whole when a character straddles the page boundary', () => {
    const path = join(dir, 'utf8');
    const text = 'a'.repeat(4095) + 'é' + 'b'.repeat(10);
    writeFileSync(path, text, 'utf8');
    expect(readSmallFile(path, 'utf8')).toBe(text);
  });

  it('throws what readFileSync throws for a missing file', () => {
    expect(() => readSmallFile(join(dir, 'missing'), 'utf8')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});

describe('removeFile', () => {
  it('removes a file, is quiet when there is none, and refuses a directory', () => {
    const path = join(dir, 'gone');
    writeFileSync(path, 'x');
    removeFile(path);
    expect(existsSync(path)).toBe(false);
    expect(() => removeFile(path)).not.toThrow();
    mkdirSync(join(dir, 'sub'));
    expect(() => removeFile(join(dir, 'sub'))).toThrow();
    expect(existsSync(join(dir, 'sub'))).toBe(true);
  });
});
