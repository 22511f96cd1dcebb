/**
 * The qemu backend through the worker pool (src/pool): QEMU is spawned by a worker thread, and the
 * plain-JSON handle is enough for any thread to watch, suspend, resume and destroy it.
 * Bridge jt4b5, 10.203.5.0/24. Needs the compiled worker (npx tsc -p .).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendHandle, ServiceSpec } from '../../src/backends/backend.js';
import { silentLogger } from '../../src/observe/log.js';
import { BackendPool, defaultWorkerFile } from '../../src/pool/index.js';
import { linkExists } from '../../src/network/index.js';
import { buildGuest, createVmEnv, curl, curlFails, type VmEnv } from '../helpers/vm-env.js';

const canRun = process.getuid?.() === 0 && existsSync(defaultWorkerFile());

describe.skipIf(!canRun)('qemu backend through the worker pool', () => {
  let env: VmEnv;
  let pool: BackendPool;
  beforeAll(async () => {
    await buildGuest();
    env = await createVmEnv(5);
    pool = new BackendPool({ minThreads: 2, maxThreads: 2, logger: silentLogger });
  });
  afterAll(async () => {
    await env?.cleanup((h, s) => pool.stop(h, s, 'destroy', 10_000));
    await pool?.close();
  });

  it('boots two VMs concurrently from worker threads; curl reaches both; stop from any thread', async () => {
    const specs: ServiceSpec[] = [
      env.spec('jt4-pl-a', 10, { tap: ['jt4t50'] }),
      env.spec('jt4-pl-b', 11, { tap: ['jt4t51'] }, { ready: { kind: 'tcp', port: 80 } }),
    ];
    const handles: BackendHandle[] = await Promise.all(specs.map(async (s) => {
      const h = await pool.start(s, 15_000);
      env.track(h, s);
      await pool.ready(h, s, 60_000);
      return h;
    }));
    for (const s of specs) expect(await curl(`http://${s.network.ip}/`)).toBe(`jitsu guest ${s.service}\n`);

    const [a, b] = handles as [BackendHandle, BackendHandle];
    const [sa, sb] = specs as [ServiceSpec, ServiceSpec];
    await pool.stop(a, sa, 'suspend', 5000);
    expect(await pool.state(a, sa)).toBe('paused');
    expect(await curlFails(`http://${sa.network.ip}/`, 1)).toBe(true);
    await pool.resume(a, sa, 5000);
    expect(await curl(`http://${sa.network.ip}/`)).toBe('jitsu guest jt4-pl-a\n');

    await Promise.all([pool.stop(a, sa, 'destroy', 10_000), pool.stop(b, sb, 'destroy', 10_000)]);
    expect(await pool.state(a, sa)).toBe('stopped');
    expect(await pool.state(b, sb)).toBe('stopped');
    expect(linkExists('jt4t50') || linkExists('jt4t51')).toBe(false);
  });
});
