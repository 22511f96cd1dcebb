/**
 * Section `relay`: throughput of a connection made during a masked boot (handshake: Synjitsu
 * completes it and relays it for its lifetime) against a direct connection to the same running
 * service, in the same run, for each --synjitsu-relay mode (kernel: a tc program on the guest link;
 * daemon: every segment through the daemon). The service is busybox httpd in its netns serving a
 * 1 GiB file (long enough that the first ~100 ms, while the daemon relays and hands the connection
 * to the kernel, do not dominate), started 300 ms after its summon, so the first connection always meets the mask.
 */
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { startProbeClient } from '../lib/client.js';
import { startJitsu } from '../lib/daemon.js';
import { run, which } from '../lib/proc.js';
import { statCells } from '../lib/report.js';
import { summarize } from '../lib/stats.js';
import { waitStopped } from '../lib/summon.js';
import type { Benchmark } from '../lib/types.js';

const BRIDGE = 'jt6rbr';
const SUBNET = '10.205.6';
const SERVICE_IP = `${SUBNET}.10`;
const DIR = '/var/tmp/jitsu-bench-relay';
const SIZE = 1024 * 1024 * 1024;
const MODES = ['kernel', 'daemon'] as const;

/** MB/s after the first byte (the masked connection's wait for the boot does not count). */
async function download(netns: string): Promise<number> {
  const r = await run('ip', ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '60', '-o', '/dev/null', '-w', '%{time_starttransfer} %{time_total} %{size_download}', `http://${SERVICE_IP}/big`], 70_000);
  const [firstByte, total, bytes] = r.stdout.trim().split(' ').map(Number) as [number, number, number];
  if (r.code !== 0 || bytes !== SIZE) throw new Error(`curl exit ${r.code}, ${bytes} of ${SIZE} bytes: ${r.stderr.trim().slice(0, 300)}`);
  return bytes / 1e6 / Math.max(1e-3, total - firstByte);
}

export const relayBenchmark: Benchmark = {
  id: 'relay',
  title: 'Relayed connection (made during a masked boot) vs direct, per relay mode',
  async run(ctx, out) {
    if (!(await which('busybox'))) {
      out.skipped['all'] = 'busybox is not installed (busybox-static)';
      return;
    }
    mkdirSync(`${DIR}/www`, { recursive: true });
    writeFileSync(`${DIR}/www/big`, '');
    truncateSync(`${DIR}/www/big`, SIZE);
    writeFileSync(`${DIR}/serve.sh`, `sleep 0.3\nexec busybox httpd -f -p 80 -h ${DIR}/www\n`);
    const runs = Math.min(ctx.runs, ctx.quick ? 1 : 5);
    const rows: (string | number | null)[][] = [];
    for (const mode of MODES) {
      const relayed: number[] = [];
      const direct: number[] = [];
      const errors: string[] = [];
      const daemon = await startJitsu({
        root: ctx.root,
        flags: ['--bridge', BRIDGE, '--synjitsu', BRIDGE, '--synjitsu-relay', mode, '-d', '0', '--idle-timeout', '1.5', '--sweep-interval', '0.5', '--log-level', 'info'],
        services: [`name=jt6r0,dns=relay.jt6r.test,ip=${SERVICE_IP},backend=process,exec="/bin/sh ${DIR}/serve.sh",ready=tcp:80,mask=handshake`],
      });
      try {
        const client = await startProbeClient(ctx.root, BRIDGE, 'r', `${SUBNET}.250/24`);
        try {
          for (let i = 0; i < runs && Date.now() < ctx.deadline && errors.length < 3; i++) {
            try {
              await waitStopped(daemon, 'jt6r0', 30_000);
              // No DNS: the SYN to the stopped service's address summons it, and is masked.
              relayed.push(await download(client.netns));
              direct.push(await download(client.netns));
            } catch (err) {
              errors.push(err instanceof Error ? err.message : String(err));
            }
          }
        } finally {
          await client.close();
        }
        const text = await daemon.metricsText();
        const kernel = /synjitsu_connections_total\{[^}]*event="kernel_relay"[^}]*\} (\d+)/.exec(text);
        out.values[`${mode} connections moved to the kernel`] = Number(kernel?.[1] ?? 0);
      } finally {
        await daemon.stop();
      }
      if (errors.length) out.notes.push(`${mode}: ${errors.length} failed run(s), last: ${errors[errors.length - 1]!.slice(0, 300)}`);
      if (relayed.length === 0) {
        out.skipped[mode] = `no successful run: ${errors[errors.length - 1] ?? 'out of time'}`.slice(0, 500);
        continue;
      }
      const r = summarize(relayed, 'MB/s');
      const d = summarize(direct, 'MB/s');
      out.metrics[`${mode} relayed`] = r;
      out.metrics[`${mode} direct`] = d;
      const ratio = r.median / d.median;
      out.values[`${mode} relayed/direct`] = Number(ratio.toFixed(2));
      rows.push([mode, ...statCells(r), d.median, Number(ratio.toFixed(2))]);
    }
    out.tables.push({
      title: 'Download throughput after the first byte (MB/s), 1 GiB: the connection made during the boot (relayed) vs a direct one right after',
      columns: ['relay', 'min', 'median', 'p99', 'mean', 'n', 'direct median', 'relayed/direct'],
      rows,
    });
    out.notes.push(
      'Client: curl in its own netns on the bridge; the first connection is a SYN to the stopped service (summon-on-SYN, mask=handshake) and is relayed for its lifetime; the second connects after ready and goes straight to the guest.',
    );
  },
};
