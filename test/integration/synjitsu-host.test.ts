/**
 * The host is a client too (it owns the bridge's .1, as the daemon's bridge does): its SYNs leave
 * through the bridge device and answers must come up its own stack, through Synjitsu's host port.
 */
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, SynjitsuRig } from '../helpers/synjitsu-rig.js';
import { maskedService, maskingSuite, maskingUnavailable, metric } from '../helpers/synjitsu-scenario.js';

const unavailable = maskingUnavailable();

describe.skipIf(unavailable !== undefined)('synjitsu masks the host’s own connections', () => {
  const suite = maskingSuite(new SynjitsuRig(35), () => rig.hostAddress());
  const rig = suite.rig;

  for (const [mask, bootMs] of [['park', 300], ['handshake', 300], ['handshake', 3000]] as const) {
    it(`${mask} masks a ${bootMs} ms boot for a client on the host`, async () => {
      const svc = await suite.hold(maskedService(rig, mask, bootMs));
      const before = await run('nstat', ['-asz', 'TcpExtTCPSynRetrans']);
      const res = await rig.hostCurl('/');
      const after = await run('nstat', ['-asz', 'TcpExtTCPSynRetrans']);
      await svc.done();
      console.log(`host client, ${mask} ${bootMs} ms: connect=${res.connect}s firstByte=${res.firstByte}s`);
      if (res.code !== 0 || res.firstByte > bootMs / 1000 + 0.5) console.log(svc.log.join('\n'));
      expect(res.code, res.stderr).toBe(0);
      expect(res.body).toContain('hello from vm GET');
      expect(svc.summons).toBe(1);
      expect(res.firstByte).toBeLessThan(bootMs / 1000 + 0.5);
      // The host's counters are shared with everything else on this machine: only report them.
      console.log('host SYN retransmits (machine-wide, informative):', before.stdout.trim(), '->', after.stdout.trim());
      if (mask === 'handshake') expect(res.connect).toBeLessThan(0.2);
      expect(metric(svc.metrics, 'synjitsu_connections_total', 'handed_over')).toBe(1);
    });
  }

  it('handshake relays a large download to the host intact', async () => {
    const svc = await suite.hold(maskedService(rig, 'handshake', 300));
    const down = join(tmpdir(), `jt3-host-down-${process.pid}.bin`);
    try {
      const size = 4 * 1024 * 1024;
      const r = await run('curl', ['-sS', '--max-time', '20', '-o', down, `http://${rig.vmIp}/big/${size}`], 30_000);
      await svc.done();
      expect(r.code, r.stderr).toBe(0);
      const got = await readFile(down);
      const pattern = Buffer.alloc(65536);
      for (let i = 0; i < pattern.length; i++) pattern[i] = i % 251;
      const want = createHash('sha256');
      for (let left = size; left > 0; left -= 65536) want.update(pattern.subarray(0, Math.min(left, 65536)));
      expect(got.length).toBe(size);
      expect(createHash('sha256').update(got).digest('hex')).toBe(want.digest('hex'));
      // The host's connection moved into the kernel relay too (guest link ingress/egress).
      expect(metric(svc.metrics, 'synjitsu_connections_total', 'kernel_relay')).toBe(1);
    } finally {
      await rm(down, { force: true });
    }
  });
});
