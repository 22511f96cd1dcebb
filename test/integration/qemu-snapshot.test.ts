/**
 * snapshot=template against real QEMU (TCG): the first start boots cold and saves a template under
 * a snapshot dir of the test's own; later starts restore copies from it. Each copy serves its page,
 * two copies are distinct (the agent reseeded their RNGs), and a corrupt state file, a deleted
 * memory file and a changed command line each fall back to a cold boot with a fresh template;
 * prespawn=on restores in a QEMU started ahead; prespawn=warm keeps the next copy restored and warmed.
 * Bridge jt4b6, 10.203.6.0/24. Prints FIGURE lines: cold boot vs restore, start() → first byte.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { backend, qmpOnce } from '../../src/backends/qemu/index.js';
import { buildGuest, createVmEnv, curl, firstByteMs, median, type GuestImage, type VmEnv } from '../helpers/vm-env.js';

const hasQemu = existsSync('/usr/bin/qemu-system-x86_64');
const isRoot = process.getuid?.() === 0;

describe.skipIf(!hasQemu || !isRoot)('qemu snapshot=template (real QEMU)', () => {
  let env: VmEnv;
  let img: GuestImage;
  let store: { dir: string; maxBytes: number };
  const timeout = (ms: number): AbortSignal => AbortSignal.timeout(ms);
  const url = 'http://10.203.6.10/';

  function spec(extra: Record<string, string[]> = {}): ServiceSpec {
    const s = env.spec('jt4-snap', 10, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4s1'], snapshot: ['template'], ...extra });
    return { ...s, snapshots: store };
  }

  /** start() + ready(), timed to the first HTTP byte. */
  async function summon(s: ServiceSpec): Promise<{ handle: BackendHandle; ms: number }> {
    const t0 = performance.now();
    const handle = await backend.start(s, timeout(90_000));
    env.track(handle, s);
    await backend.ready(handle, s, timeout(30_000));
    // Bounded from now: the cold boot before it may have taken long on a loaded machine.
    const ms = await firstByteMs(url, t0, performance.now() - t0 + 10_000);
    return { handle, ms };
  }

  async function destroy(h: BackendHandle, s: ServiceSpec): Promise<void> {
    await backend.stop(h, s, 'destroy', timeout(10_000));
  }

  function templateDirs(): string[] {
    const root = join(store.dir, 'jt4-snap');
    return existsSync(root) ? readdirSync(root).filter((n) => !n.startsWith('.')) : [];
  }

  beforeAll(async () => {
    img = await buildGuest();
    env = await createVmEnv(6);
    // Under /dev/shm, as the default: tmpfs, so a copy maps the template's RAM copy-on-write.
    store = { dir: mkdtempSync('/dev/shm/jt4-snap-'), maxBytes: 1024 * 1024 * 1024 };
  });
  afterAll(async () => {
    await env?.cleanup((h, s) => backend.stop(h, s, 'destroy', timeout(10_000)));
    if (store) rmSync(store.dir, { recursive: true, force: true });
  });

  let coldMs = 0;
  const restoreMs: number[] = [];

  it('the first start boots cold, saves a template, and serves from a restored copy', async () => {
    const s = spec();
    const { handle, ms } = await summon(s);
    coldMs = ms;
    expect(handle.notes?.some((n) => n.startsWith('template saved:'))).toBe(true);
    expect(await curl(url)).toBe('jitsu guest jt4-snap\n');
    const [key] = templateDirs();
    expect(key).toMatch(/^[0-9a-f]{20}$/);
    const dir = join(store.dir, 'jt4-snap', key!);
    expect(statSync(join(dir, 'mem')).size).toBe(128 * 1024 * 1024);
    expect(statSync(join(dir, 'state')).size).toBeGreaterThan(1000);
    expect(existsSync(join(dir, 'meta.json'))).toBe(true);
    await destroy(handle, s);
  });

  it('later starts restore a copy; two copies one after the other are distinct', async () => {
    const s = spec();
    const randoms: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { handle, ms } = await summon(s);
      restoreMs.push(ms);
      expect(handle.notes?.[0]).toMatch(/^restored from template /);
      expect(await curl(url)).toBe('jitsu guest jt4-snap\n');
      randoms.push((await curl(`${url}cgi-bin/random`)).trim());
      await destroy(handle, s);
    }
    expect(new Set(randoms).size).toBe(randoms.length);
    for (const r of randoms) expect(r).toMatch(/^[0-9a-f-]{36}$/);
    console.log(`FIGURE qemu snapshot (TCG, stock kernel, 128 MiB): start() -> first byte: cold boot + template ${coldMs.toFixed(0)} ms; restored copy median ${median(restoreMs).toFixed(0)} ms (${restoreMs.map((m) => m.toFixed(0)).join(', ')})`);
  });

  it('prespawn=on: a QEMU waits for the template with its tap down; a summon restores in it, a fresh copy each time; a stale one is ended', async () => {
    const s = spec({ prespawn: ['on'] });
    const alive = (h: BackendHandle): boolean => existsSync(`/proc/${h.pid}`);
    const tapUp = (): boolean => (parseInt(readFileSync('/sys/class/net/jt4s1/flags', 'utf8'), 16) & 1) === 1;
    const prespawnedMs: number[] = [];
    const randoms: string[] = [];
    const kib = (pid: number, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    let waitingKiB = 0;
    let copy = { anon: 0, file: 0, shmem: 0 };
    for (let i = 0; i < 3; i++) {
      const standby = (await backend.prepare!(s, timeout(30_000)))!;
      expect(standby).toBeDefined();
      env.track(standby, s);
      expect(alive(standby)).toBe(true);
      expect(tapUp()).toBe(false);
      // Idempotent: the one waiting is kept.
      expect((await backend.prepare!(s, timeout(30_000)))?.pid).toBe(standby.pid);
      waitingKiB = kib(standby.pid!, 'VmRSS');
      const { handle, ms } = await summon(s);
      prespawnedMs.push(ms);
      expect(handle.pid).toBe(standby.pid);
      expect(handle.notes?.[0]).toMatch(/^restored from template .* in a pre-spawned QEMU$/);
      expect(await curl(url)).toBe('jitsu guest jt4-snap\n');
      randoms.push((await curl(`${url}cgi-bin/random`)).trim());
      copy = { anon: kib(handle.pid!, 'RssAnon'), file: kib(handle.pid!, 'RssFile'), shmem: kib(handle.pid!, 'RssShmem') };
      await destroy(handle, s);
    }
    expect(new Set(randoms).size).toBe(randoms.length);
    const mib = (k: number): string => (k / 1024).toFixed(1);
    console.log(`FIGURE qemu snapshot prespawn=on (TCG): start() -> first byte median ${median(prespawnedMs).toFixed(0)} ms (${prespawnedMs.map((m) => m.toFixed(0)).join(', ')}); a waiting QEMU: ${mib(waitingKiB)} MiB RSS; a serving copy: ${mib(copy.anon)} MiB private, ${mib(copy.shmem)} MiB shared with the template's RAM file, ${mib(copy.file)} MiB file-backed`);

    // One recorded for another template (any key but this one) is never started: it is ended, and a new QEMU restores.
    const stale = (await backend.prepare!(s, timeout(30_000)))!;
    env.track(stale, s);
    const record = join(s.runDir, 'standby.json');
    writeFileSync(record, JSON.stringify({ ...JSON.parse(readFileSync(record, 'utf8')), key: 'another-template' }));
    const { handle } = await summon(s);
    expect(handle.pid).not.toBe(stale.pid);
    expect(handle.notes?.[0]).toMatch(/^restored from template /);
    expect(handle.notes?.[0]).not.toMatch(/pre-spawned/);
    await expect.poll(() => alive(stale)).toBe(false);
    await destroy(handle, s);

    // prespawn off again: what waits is ended.
    const held = (await backend.prepare!(s, timeout(30_000)))!;
    env.track(held, s);
    // (Not spec(): it empties the service's run dir, where the record is.)
    expect(await backend.prepare!({ ...s, options: { ...s.options, prespawn: ['off'] } }, timeout(30_000))).toBeUndefined();
    await expect.poll(() => alive(held)).toBe(false);
    expect(existsSync(record)).toBe(false);
  });

  it('prespawn=warm: the next copy waits restored, reseeded, warmed and paused (tap down, no CPU); a summon lets it run on; copies stay distinct', async () => {
    const s = spec({ prespawn: ['warm'] });
    const tapUp = (): boolean => (parseInt(readFileSync('/sys/class/net/jt4s1/flags', 'utf8'), 16) & 1) === 1;
    const status = async (h: BackendHandle): Promise<string> => String(((await qmpOnce(String(h.data['qmp']), 'query-status')) as { status?: string }).status);
    const cpuTicks = (pid: number): number => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    const warmMs: number[] = [];
    const randoms: string[] = [];
    for (let i = 0; i < 3; i++) {
      const standby = (await backend.prepare!(s, timeout(30_000)))!;
      env.track(standby, s);
      expect(tapUp()).toBe(false);
      expect(await status(standby)).toBe('paused');
      const before = cpuTicks(standby.pid!);
      await new Promise((r) => setTimeout(r, 1000));
      // A paused guest runs nothing (a running idle one here costs ~6 ticks a second under TCG).
      expect(cpuTicks(standby.pid!) - before).toBeLessThanOrEqual(2);
      expect((await backend.prepare!(s, timeout(30_000)))?.pid).toBe(standby.pid);
      const { handle, ms } = await summon(s);
      warmMs.push(ms);
      expect(handle.pid).toBe(standby.pid);
      expect(handle.notes?.[0]).toMatch(/^restored from template .* ahead and warmed while stopped$/);
      expect(await status(handle)).toBe('running');
      randoms.push((await curl(`${url}cgi-bin/random`)).trim());
      await destroy(handle, s);
    }
    // Each copy was reseeded when it was restored, and again at its summon: never two alike.
    expect(new Set(randoms).size).toBe(randoms.length);
    console.log(`FIGURE qemu snapshot prespawn=warm (TCG): start() -> first byte median ${median(warmMs).toFixed(0)} ms (${warmMs.map((m) => m.toFixed(0)).join(', ')})`);

    // The mode is part of what a standby was made for: a warm copy is not taken for prespawn=on.
    const warm = (await backend.prepare!(s, timeout(30_000)))!;
    env.track(warm, s);
    const on = { ...s, options: { ...s.options, prespawn: ['on'] } };
    const waiting = (await backend.prepare!(on, timeout(30_000)))!;
    env.track(waiting, on);
    expect(waiting.pid).not.toBe(warm.pid);
    await expect.poll(() => existsSync(`/proc/${warm.pid}`)).toBe(false);
    expect(await status(waiting)).toBe('inmigrate');
    expect(await backend.prepare!({ ...s, options: { ...s.options, prespawn: ['off'] } }, timeout(30_000))).toBeUndefined();
  });

  it('a corrupt state file falls back to a cold boot and a fresh template', async () => {
    const [key] = templateDirs();
    writeFileSync(join(store.dir, 'jt4-snap', key!, 'state'), 'not a migration stream');
    const s = spec();
    const { handle } = await summon(s);
    expect(handle.notes?.join('\n')).toMatch(/state file does not match its hash[\s\S]*template saved:/);
    expect(await curl(url)).toBe('jitsu guest jt4-snap\n');
    await destroy(handle, s);
    const again = await summon(s);
    expect(again.handle.notes?.[0]).toMatch(/^restored from template /);
    await destroy(again.handle, s);
  });

  it('a deleted memory file falls back to a cold boot', async () => {
    const [key] = templateDirs();
    rmSync(join(store.dir, 'jt4-snap', key!, 'mem'));
    const s = spec();
    const { handle } = await summon(s);
    expect(handle.notes?.join('\n')).toMatch(/memory file is missing[\s\S]*template saved:/);
    await destroy(handle, s);
  });

  it('a changed command line gets a new template, never the old guest', async () => {
    const [before] = templateDirs();
    const s = spec({ cmdline: ['loglevel=5'] });
    const { handle } = await summon(s);
    expect(handle.notes?.some((n) => n.startsWith('template saved:'))).toBe(true);
    const after = templateDirs();
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before);
    await destroy(handle, s);
  });

  it('a full snapshot dir means a cold boot that serves, not a failure', async () => {
    const s = { ...spec({ cmdline: ['loglevel=6'] }), snapshots: { dir: store.dir, maxBytes: 1024 * 1024 } };
    const { handle } = await summon(s);
    expect(handle.notes?.join('\n')).toMatch(/no template taken: .*--snapshot-max-mb/);
    expect(await curl(url)).toBe('jitsu guest jt4-snap\n');
    await destroy(handle, s);
  });

  it('stop mode hibernate frees the guest and resume brings it back where it was (a counter in guest RAM survives)', async () => {
    const s = { ...env.spec('jt4-hib', 11, { kernel: [img.stock], initrd: [img.initrd], tap: ['jt4s2'] }), snapshots: store };
    const page = 'http://10.203.6.11/cgi-bin/count';
    const h = await backend.start(s, timeout(60_000));
    env.track(h, s);
    await backend.ready(h, s, timeout(30_000));
    await firstByteMs('http://10.203.6.11/', performance.now(), 15_000);
    expect((await curl(page)).trim()).toBe('1');
    expect((await curl(page)).trim()).toBe('2');
    await backend.stop(h, s, 'hibernate', timeout(60_000));
    expect(existsSync(`/proc/${h.pid}`)).toBe(false);
    expect(await backend.state(h, s)).toBe('paused');
    const image = join(store.dir, 'jt4-hib', 'hibernated', 'state');
    console.log(`FIGURE qemu hibernate image (128 MiB guest): ${(statSync(image).size / 1024 / 1024).toFixed(1)} MiB`);
    const t0 = performance.now();
    const woken = await backend.resume!(h, s, timeout(60_000));
    expect(woken).toBeDefined();
    env.track(woken!, s);
    expect(woken!.notes).toEqual(['resumed from hibernation']);
    await backend.ready(woken!, s, timeout(30_000));
    expect((await curl(page, 10)).trim()).toBe('3');
    console.log(`FIGURE qemu hibernate resume (TCG): resume() -> counter page ${(performance.now() - t0).toFixed(0)} ms`);
    expect(existsSync(image)).toBe(false);
    await destroy(woken!, s);
    expect(await backend.state(woken!, s)).toBe('stopped');
  });
});
