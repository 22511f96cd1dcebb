import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { storeHasRoom, storeUsage } from '../common/snapshot-store.js';
import { buildPaths, checkTemplate, removeTemplates, sealTemplate, templateKey } from './snapshot.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(maxBytes = 1 << 30): { dir: string; maxBytes: number } {
  const dir = mkdtempSync(join(tmpdir(), 'jitsu-snap-'));
  dirs.push(dir);
  return { dir, maxBytes };
}

function file(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'jitsu-snapf-'));
  dirs.push(dir);
  const f = join(dir, 'kernel');
  writeFileSync(f, content);
  return f;
}

/** A template as the backend leaves it: built in a .build dir, sealed under its key. */
function template(s: { dir: string; maxBytes: number }, key: string, memBytes = 4096): void {
  const build = buildPaths(s, 'web');
  mkdirSync(build.dir, { recursive: true });
  writeFileSync(build.mem, '');
  truncateSync(build.mem, memBytes);
  writeFileSync(build.state, 'QEVM device state');
  sealTemplate(s, 'web', key, build, 'QEMU 7.2', memBytes);
}

describe('templateKey', () => {
  const argv = ['-M', 'microvm', '-qmp', 'unix:/run/a/qmp.sock,server=on', '-netdev', 'tap,ifname=web-t', '-append', 'jitsu.ip=10.0.0.2/24'];
  it('does not depend on run-specific paths and tap names', () => {
    const kernel = file('vmlinux');
    const a = templateKey('v', argv, ['/run/a/qmp.sock', 'web-t'], [kernel]);
    const moved = argv.map((x) => x.replace('/run/a/', '/run/b/').replace('web-t', 'web-u'));
    expect(templateKey('v', moved, ['/run/b/qmp.sock', 'web-u'], [kernel])).toBe(a);
  });
  it('changes with the command line, the QEMU version and the kernel content', () => {
    const kernel = file('vmlinux');
    const a = templateKey('v', argv, [], [kernel]);
    expect(templateKey('v', argv.map((x) => x.replace('10.0.0.2', '10.0.0.3')), [], [kernel])).not.toBe(a);
    expect(templateKey('v2', argv, [], [kernel])).not.toBe(a);
    expect(templateKey('v', argv, [], [file('another kernel')])).not.toBe(a);
  });
});

describe('checkTemplate', () => {
  it('accepts a sealed template and says what is wrong with a bad one', () => {
    const s = store();
    expect(checkTemplate(s, 'web', 'k1', 4096)).toEqual({ ok: false, present: false, reason: 'no template yet' });
    template(s, 'k1');
    expect(checkTemplate(s, 'web', 'k1', 4096).ok).toBe(true);
    expect(checkTemplate(s, 'web', 'k1', 8192)).toMatchObject({ ok: false, reason: expect.stringMatching(/memory file has 4096 bytes, expected 8192/) });
    writeFileSync(join(s.dir, 'web', 'k1', 'state'), 'QEVM tampered');
    expect(checkTemplate(s, 'web', 'k1', 4096)).toMatchObject({ ok: false, present: true, reason: expect.stringMatching(/does not match its hash/) });
    rmSync(join(s.dir, 'web', 'k1', 'mem'));
    expect(checkTemplate(s, 'web', 'k1', 4096)).toMatchObject({ ok: false, reason: expect.stringMatching(/memory file is missing/) });
    rmSync(join(s.dir, 'web', 'k1', 'meta.json'));
    expect(checkTemplate(s, 'web', 'k1', 4096)).toMatchObject({ ok: false, present: true, reason: expect.stringMatching(/no readable meta.json/) });
  });
  it('keeps one template per service: sealing a new key replaces the old one; removeTemplates clears dead builds', () => {
    const s = store();
    template(s, 'k1');
    template(s, 'k2');
    expect(checkTemplate(s, 'web', 'k1', 4096).ok).toBe(false);
    expect(checkTemplate(s, 'web', 'k2', 4096).ok).toBe(true);
    mkdirSync(join(s.dir, 'web', '.build-999999999-x'), { recursive: true });
    removeTemplates(s, 'web');
    expect(storeUsage(s.dir).bySubdir['web']).toBe(0);
  });
});

describe('the snapshot store', () => {
  it('counts allocated bytes per service and refuses what would pass the bound', () => {
    const s = store(64 * 1024);
    template(s, 'k1', 1 << 20); // sparse: 1 MiB long, nothing allocated
    const usage = storeUsage(s.dir);
    expect(usage.bySubdir['web']).toBeLessThan(64 * 1024);
    expect(storeHasRoom(s, 1024)).toEqual({ ok: true });
    expect(storeHasRoom(s, 1 << 20)).toMatchObject({ ok: false, reason: expect.stringMatching(/--snapshot-max-mb/) });
  });
});
