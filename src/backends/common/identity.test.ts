import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errorCode } from '../../errors.js';
import { resolveIdentity } from './identity.js';

const dir = mkdtempSync(join(tmpdir(), 'jitsu-identity-'));
const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/bash\nweb:x:1001:1002::/nonexistent:/usr/sbin/nologin\n');
writeFileSync(files.group, 'root:x:0:\nwebgrp:x:1002:\nextra:x:1500:\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const thrown = (f: () => unknown): Error => {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
};

describe('service identity', () => {
  it('resolves names and numbers; the group defaults to the primary one', () => {
    expect(resolveIdentity('s', 'web', undefined, files)).toEqual({ user: 'web', uid: 1001, gid: 1002 });
    expect(resolveIdentity('s', 'web', 'extra', files)).toEqual({ user: 'web', uid: 1001, gid: 1500 });
    expect(resolveIdentity('s', '1001', '77', files)).toEqual({ user: 'web', uid: 1001, gid: 77 });
    expect(resolveIdentity('s', 'root', undefined, files).uid).toBe(0);
  });
  it('a missing default user names the fix: run setup, or user=root', () => {
    const err = thrown(() => resolveIdentity('s', 'jitsu-svc', undefined, files));
    expect(errorCode(err)).toBe('BOOT_FAILED');
    expect(err.message).toMatch(/user jitsu-svc does not exist: run scripts\/setup\.sh .*user=root/);
  });
  it('a missing group, or a bare uid without group=, is an error naming the key', () => {
    expect(thrown(() => resolveIdentity('s', 'web', 'nogroup', files)).message).toContain('group nogroup does not exist');
    expect(thrown(() => resolveIdentity('s', '4242', undefined, files)).message).toContain('set group=');
  });
});
