/**
 * The definition of done, end to end as a user runs it: the real CLI with `-x qemu`, a real
 * `dig` for the service's name boots a real microVM (the project's guest image), and `curl` gets its
 * HTTP reply. Bridge jt4d2, subnet 10.203.2.0/24, tap jt4t20.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanupNetwork, curl, dig, haveCommand, isRoot, startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { buildGuest } from '../helpers/vm-env.js';

const canRun = isRoot() && haveCommand('dig') && haveCommand('curl') && haveCommand('qemu-system-x86_64') && existsSync(CLI);
const why = canRun ? '' : '(needs root, dig, curl, qemu-system-x86_64 and a build: npx tsc -p .)';

describe.skipIf(!canRun)(`jitsu -x qemu: dig boots a real VM, curl gets its page ${why}`, () => {
  let d: DaemonProcess | undefined;
  beforeAll(async () => {
    await buildGuest();
  });
  afterAll(async () => {
    await d?.stop();
    await cleanupNetwork('jt4d2');
    await cleanupNetwork('jt4t20');
  });

  it('answers at once (handshake masking is the qemu default), curl from the host gets the page from inside the VM; stop leaves nothing', async () => {
    d = await startDaemon({
      bridge: 'jt4d2',
      args: ['-x', 'qemu', '-f', '0.0.0.0', '--boot-timeout', '90', '-d', '0'],
      services: ['name=jt4dig,dns=jt4dig.jitsu.test,ip=10.203.2.10,tap=jt4t20'],
    });
    const t0 = performance.now();
    const a = await dig(d.port, 'jt4dig.jitsu.test');
    const digMs = performance.now() - t0;
    expect(a.status).toBe('NOERROR');
    expect(a.answers[0]).toMatch(/^jt4dig\.jitsu\.test\.\s+\d+\s+IN\s+A\s+10\.203\.2\.10$/);
    expect(await curl('http://10.203.2.10/')).toBe('jitsu guest jt4dig\n');
    expect(digMs).toBeLessThan(2000); // masked: the answer does not wait for the multi-second boot
    console.log(`[qemu-dig] dig answered after ${digMs.toFixed(0)} ms (cold microVM boot, masked), curl ok at ${(performance.now() - t0).toFixed(0)} ms`);
    // A second query finds it running: answered at once.
    const t1 = performance.now();
    expect((await dig(d.port, 'jt4dig.jitsu.test')).answers[0]).toContain('10.203.2.10');
    expect(performance.now() - t1).toBeLessThan(1000);
    expect(existsSync('/sys/class/net/jt4t20')).toBe(true);

    expect(await d.stop()).toBe(0);
    d = undefined;
    // A clean exit stops the VM: its tap is gone and nothing answers.
    expect(existsSync('/sys/class/net/jt4t20')).toBe(false);
  });
});
