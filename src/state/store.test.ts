import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PersistedService } from './store.js';
import { StateStore } from './store.js';

function entry(pid: number): PersistedService {
  return {
    spec: { service: `s${pid}` } as PersistedService['spec'],
    handle: { backend: 'process', service: `s${pid}`, pid, data: {} },
    suspended: false,
    bootCount: 1,
  };
}

function onDisk(dir: string): Record<string, PersistedService> {
  return (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { services: Record<string, PersistedService> }).services;
}

describe('StateStore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  async function store(): Promise<{ store: StateStore; dir: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'jitsu-store-'));
    dirs.push(dir);
    const s = new StateStore(dir);
    await s.load();
    return { store: s, dir };
  }

  it('flush() covers a change made just before it (the write has not started yet)', async () => {
    const { store: s, dir } = await store();
    void s.set('a', entry(1));
    await s.flush();
    expect(Object.keys(onDisk(dir))).toEqual(['a']);
  });

  it('a burst of changes joins one write, which holds all of them', async () => {
    const { store: s, dir } = await store();
    const writes = [s.set('a', entry(1)), s.set('b', entry(2)), s.set('a', undefined), s.set('c', entry(3))];
    expect(new Set(writes).size).toBe(1);
    await Promise.all(writes);
    expect(Object.keys(onDisk(dir)).sort()).toEqual(['b', 'c']);
  });

  it('a change made while a write is under way gets a write of its own, after it', async () => {
    const { store: s, dir } = await store();
    const first = s.set('a', entry(1));
    // The write starts on the turn after the one its set() queued its wait in.
    for (let turn = 0; turn < 2; turn++) await new Promise((r) => setImmediate(r));
    const second = s.set('b', entry(2));
    expect(second).not.toBe(first);
    await second;
    expect(Object.keys(onDisk(dir)).sort()).toEqual(['a', 'b']);
  });

  it('a failed write rejects its callers and does not wedge the next one', async () => {
    const { store: s, dir } = await store();
    rmSync(dir, { recursive: true });
    await expect(s.set('a', entry(1))).rejects.toThrow(/ENOENT/);
    mkdirSync(dir);
    await s.set('b', entry(2));
    expect(Object.keys(onDisk(dir)).sort()).toEqual(['a', 'b']);
  });

  it('reads back what it wrote, and refuses a torn or foreign file with STATE_CORRUPT', async () => {
    const { store: s, dir } = await store();
    await s.set('a', entry(7));
    expect(await new StateStore(dir).load()).toEqual({ a: entry(7) });
    for (const text of ['{"version":1,"serv', '{"version":2,"services":{}}']) {
      writeFileSync(join(dir, 'state.json'), text);
      await expect(new StateStore(dir).load()).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    }
  });
});
