import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from './path-lookup.js';

describe('findExecutable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jitsu-path-'));
  const first = join(dir, 'first');
  const second = join(dir, 'second');
  mkdirSync(first);
  mkdirSync(second);
  mkdirSync(join(first, 'tool')); // a directory of that name is skipped, as execvp skips it
  writeFileSync(join(second, 'tool'), '#!/bin/sh\n');
  chmodSync(join(second, 'tool'), 0o755);
  writeFileSync(join(first, 'plain'), 'not executable');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the first executable regular file on the path', () => {
    expect(findExecutable('tool', `${first}::${second}`)).toBe(join(second, 'tool'));
  });
  it('finds nothing for a missing or non-executable name', () => {
    expect(findExecutable('missing', `${first}:${second}`)).toBeUndefined();
    expect(findExecutable('plain', first)).toBeUndefined();
  });
  it('takes a name with a slash as it is, relative to cwd when given', () => {
    expect(findExecutable(join(second, 'tool'), '')).toBe(join(second, 'tool'));
    expect(findExecutable('second/tool', '', dir)).toBe('second/tool');
    expect(findExecutable('second/tool', '', first)).toBeUndefined();
  });
});
