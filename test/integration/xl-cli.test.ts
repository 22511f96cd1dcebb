// Runs the real xl binaries installed from Debian's xen-utils on a host without Xen, and checks the backend
// turns their real failures into clear, stable errors. (No hypervisor here: see src/backends/xl/README.md.)
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceSpec } from '../../src/backends/backend.js';
import { createXlBackend } from '../../src/backends/xl/index.js';

const REAL_XL = '/usr/lib/xen-4.17/bin/xl';
const WRAPPER_XL = '/usr/sbin/xl';
const onXen = existsSync('/sys/hypervisor/type') && readFileSync('/sys/hypervisor/type', 'utf8').trim() === 'xen';
const why = onXen ? 'this host runs Xen: these tests cover the no-hypervisor failure path' : !existsSync(REAL_XL) ? 'xen-utils-4.17 is not installed' : '';

interface Caught {
  code?: string;
  message: string;
  details: { reason?: string; argv?: string };
}
async function caught(p: Promise<unknown>): Promise<Caught> {
  try {
    await p;
  } catch (err) {
    return err as Caught;
  }
  throw new Error('expected the call to fail');
}

describe.skipIf(why !== '')(`xl backend against the real xl binary ${why}`, () => {
  let dir = '';
  let spec: ServiceSpec;
  const signal = new AbortController().signal;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'jt5-xl-'));
    writeFileSync(join(dir, 'kernel'), 'not really a kernel');
    spec = {
      service: 'jt5www',
      backend: 'xl',
      network: { bridge: 'jt5br0', family: 4, ip: '10.204.9.2', prefixLength: 24, gateway: '10.204.9.1', mac: '02:00:00:00:00:05' },
      mask: 'none',
      options: { kernel: [join(dir, 'kernel')], memory: ['65536'], disk: [`${join(dir, 'kernel')}@xvda`] },
      runDir: dir,
    };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('start: the real xl (no /dev/xen/privcmd) maps to BACKEND_UNSUPPORTED/no-privcmd with the fix', async () => {
    const err = await caught(createXlBackend({ xl: REAL_XL }).start(spec, signal));
    expect(err.code).toBe('BACKEND_UNSUPPORTED');
    expect(err.details.reason).toBe('no-privcmd');
    expect(err.message).toMatch(/dom0/);
    expect(err.message).toContain('cannot init xl context');
  });

  it('state and stop report the same environment failure, not "stopped"', async () => {
    const xl = createXlBackend({ xl: REAL_XL });
    const handle = { backend: 'xl' as const, service: 'jt5www', data: { domain: 'jt5www' } };
    expect((await caught(xl.state(handle, spec))).details.reason).toBe('no-privcmd');
    const stop = await caught(xl.stop(handle, spec, 'destroy', signal));
    expect(stop.code).toBe('BACKEND_UNSUPPORTED');
    expect(stop.details.argv).toBe('xl destroy jt5www');
  });

  it.skipIf(!existsSync(WRAPPER_XL))("Debian's xl wrapper maps to BACKEND_UNSUPPORTED/no-hypervisor", async () => {
    const err = await caught(createXlBackend({ xl: WRAPPER_XL }).start(spec, signal));
    expect(err.code).toBe('BACKEND_UNSUPPORTED');
    expect(err.details.reason).toBe('no-hypervisor');
    expect(err.message).toMatch(/not running under Xen/);
  });

  it('a missing xl binary maps to xl-missing naming the package', async () => {
    const err = await caught(createXlBackend({ xl: join(dir, 'no-such-xl') }).start(spec, signal));
    expect(err.details.reason).toBe('xl-missing');
    expect(err.message).toMatch(/xen-utils/);
  });

  it('a missing kernel is a config error before xl runs', async () => {
    const bad = { ...spec, options: { ...spec.options, kernel: [join(dir, 'missing')] } };
    const err = await caught(createXlBackend({ xl: REAL_XL }).start(bad, signal));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('does not exist');
  });
});
