import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../backends/backend.js';
import { errorCode } from '../errors.js';
import { silentLogger } from '../observe/log.js';
import { BackendPool, defaultWorkerFile } from './pool.js';

const spec: ServiceSpec = {
  service: 'jt2-unit',
  backend: 'process',
  network: { bridge: 'jt2-none', family: 4, ip: '10.201.250.2', prefixLength: 24, gateway: '10.201.250.1', mac: '02:00:00:00:00:01' },
  mask: 'none',
  options: { exec: ['true'] },
  runDir: '/tmp',
};

describe('BackendPool', () => {
  it('loads the compiled worker from dist/ even when this module runs from src/', () => {
    expect(defaultWorkerFile()).toMatch(/\/dist\/src\/pool\/worker\.js$/);
  });

  it('says how to fix a missing worker', () => {
    let err: unknown;
    try {
      new BackendPool({ logger: silentLogger, workerFile: '/nonexistent/worker.js' });
    } catch (e) {
      err = e;
    }
    expect(errorCode(err)).toBe('NOT_BUILT');
    expect((err as Error).message).toContain('npm run build:ts');
  });

  it.skipIf(!existsSync(defaultWorkerFile()))('runs calls on a worker and rebuilds typed errors on this side', async () => {
    const pool = new BackendPool({ logger: silentLogger, maxThreads: 1 });
    try {
      // A handle whose pid is not a live process of that start time: stopped, on any thread.
      const handle = { backend: 'process' as const, service: 'jt2-unit', pid: 2 ** 22 + 7, data: { netns: 'jitsu-jt2-unit', startTime: 1 } };
      expect(await pool.state(handle, spec)).toBe('stopped');
      await pool.stop(handle, spec, 'destroy', 1000); // idempotent on a stopped service
      const bad = await pool.state({ ...handle, data: {} }, spec).catch((e: unknown) => e);
      expect(errorCode(bad)).toBe('STATE_CORRUPT');
      expect((bad as { details: { service: string } }).details.service).toBe('jt2-unit');
      const unknown = await pool.start({ ...spec, options: { exec: ['true'], kernel: ['x'] } }, 1000).catch((e: unknown) => e);
      expect(errorCode(unknown)).toBe('CONFIG_INVALID');
      // A boot that fails before anything runs tells of no start.
      const told: unknown[] = [];
      const bootErr = await pool.boot({ ...spec, options: { exec: ['true'], kernel: ['x'] } }, 1000, { onStarted: (h) => told.push(h) }).catch((e: unknown) => e);
      expect(errorCode(bootErr)).toBe('CONFIG_INVALID');
      expect(told).toEqual([]);
    } finally {
      await pool.close();
    }
    const closed = await pool.state({ backend: 'process', service: 'x', pid: 1, data: {} }, spec).catch((e: unknown) => e);
    expect(errorCode(closed)).toBe('ABORTED');
  });

  it.skipIf(!existsSync(defaultWorkerFile()))('reports when every thread has loaded its modules', async () => {
    const pool = new BackendPool({ logger: silentLogger, minThreads: 2, maxThreads: 2 });
    try {
      expect(pool.threads).toBe(2);
      expect(await pool.loaded(20_000)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  // Ending a thread while Node still loads its modules can abort the whole process (a V8 fatal
  // error in a synchronous ESM require): a daemon stopped right after it started died of SIGABRT.
  it('close() lets threads that are still loading finish before it ends them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitsu-pool-'));
    const marks = join(dir, 'loaded');
    writeFileSync(marks, '');
    process.env['JITSU_TEST_LOADED_FILE'] = marks;
    try {
      const workerFile = fileURLToPath(new URL('../../test/fixtures/pool/slow-loading-worker.mjs', import.meta.url));
      const pool = new BackendPool({ logger: silentLogger, minThreads: 2, maxThreads: 2, workerFile });
      await pool.close();
      expect(readFileSync(marks, 'utf8').trim().split('\n')).toHaveLength(2);
    } finally {
      delete process.env['JITSU_TEST_LOADED_FILE'];
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends boots on a thread\'s own line once it offers one; a thread that ends mid-boot answers WORKER_FAILED; close() waits for boots on lines', async () => {
    const workerFile = fileURLToPath(new URL('../../test/fixtures/pool/line-worker.mjs', import.meta.url));
    const hooks = { onStarted: () => undefined };
    const pool = new BackendPool({ logger: silentLogger, minThreads: 1, maxThreads: 1, workerFile });
    try {
      expect(await pool.loaded(20_000)).toBe(true);
      const many = await Promise.all(['a', 'b', 'c'].map((service) => pool.boot({ ...spec, service }, 1000, hooks)));
      expect(many.map((h) => [h.service, h.pid])).toEqual([
        ['a', 2],
        ['b', 2],
        ['c', 2],
      ]);
      // Other calls keep piscina's queue.
      expect((await pool.start({ ...spec, service: 'd' }, 1000)).pid).toBe(1);
      const died = await pool.boot({ ...spec, service: 'dies' }, 1000, hooks).catch((e: unknown) => e);
      expect(errorCode(died)).toBe('WORKER_FAILED');
      expect((died as Error).message).toMatch(/ended during a boot/);
    } finally {
      await pool.close();
    }
    const again = new BackendPool({ logger: silentLogger, minThreads: 1, maxThreads: 1, workerFile });
    expect(await again.loaded(20_000)).toBe(true);
    const slow = again.boot({ ...spec, service: 'slow' }, 1000, hooks);
    await new Promise((r) => setTimeout(r, 20));
    await again.close();
    expect(await slow).toMatchObject({ service: 'slow', pid: 2 });
  });

  it('tells a boot\'s onStarted once, before it settles, whichever of the message and the answer comes first', async () => {
    const workerFile = fileURLToPath(new URL('../../test/fixtures/pool/boot-worker.mjs', import.meta.url));
    const pool = new BackendPool({ logger: silentLogger, minThreads: 1, maxThreads: 1, workerFile });
    try {
      const expected: Record<string, string[]> = {
        early: ['started early 4242', 'called', 'settled', 'resolved early'],
        late: ['called', 'settled', 'started late 4242', 'resolved late'],
      };
      for (const service of ['early', 'late']) {
        const events: string[] = [];
        const handle = await pool.boot({ ...spec, service }, 1000, {
          onStarted: (h) => events.push(`started ${h.service} ${h.pid}`),
          onCalled: () => events.push('called'),
          onSettled: () => events.push('settled'),
        });
        events.push(`resolved ${handle.service}`);
        expect(events).toEqual(expected[service]);
        // A message that arrives after the answer is not told again.
        await new Promise((r) => setTimeout(r, 60));
        expect(events.filter((e) => e.startsWith('started'))).toHaveLength(1);
      }
      const told: string[] = [];
      const err = await pool.boot({ ...spec, service: 'fails' }, 1000, { onStarted: (h) => told.push(h.service) }).catch((e: unknown) => e);
      expect(errorCode(err)).toBe('BOOT_FAILED');
      expect(told).toEqual(['fails']);
    } finally {
      await pool.close();
    }
  });
});
