/**
 * Section `hold`: (1) 10,000 connections opened at once to a service while it boots, per mask:
 * how many get served, the client's SYN retransmissions, the first-byte spread, and memory per held
 * connection (daemon RSS growth; kernel TCP memory from /proc/net/sockstat); (2) summons per second:
 * N stopped services summoned by N concurrent DNS queries, until the last answer.
 */
import { readFileSync } from 'node:fs';
import { startProbeClient } from '../lib/client.js';
import { startJitsu, type RunningDaemon, benchDemoServer } from '../lib/daemon.js';
import { rssBytes } from '../lib/proc.js';
import { summarize } from '../lib/stats.js';
import { waitStopped } from '../lib/summon.js';
import type { Benchmark, BenchContext, SectionResult } from '../lib/types.js';
import { busyboxHttpdExec } from '../lib/www.js';

const BRIDGE = 'jt6hbr';
const SUBNET = '10.205.4';
const SUMMON_SUBNET = '10.205.5';
const HOLD_MASKS = ['activate', 'park', 'handshake'] as const;
const BOOT_DELAY_MS = 2000;

/** Kernel TCP buffer memory, all namespaces (pages of /proc/net/sockstat "TCP: ... mem N"). */
function kernelTcpBytes(): number {
  const m = readFileSync('/proc/net/sockstat', 'latin1').match(/TCP:.*\bmem (\d+)/);
  return m ? Number(m[1]) * 4096 : 0;
}

async function holdOnce(
  ctx: BenchContext,
  daemon: RunningDaemon,
  mask: string,
  count: number,
  out: SectionResult,
  rows: (string | number | null)[][],
): Promise<void> {
  const service = `jt6h${HOLD_MASKS.indexOf(mask as (typeof HOLD_MASKS)[number])}`;
  const client = await startProbeClient(ctx.root, BRIDGE, 'h', `${SUBNET}.250/24`);
  try {
    await waitStopped(daemon, service, 10_000);
    const rssBefore = rssBytes(daemon.pid) ?? 0;
    const kernelBefore = kernelTcpBytes();
    let rssPeak = rssBefore;
    let kernelPeak = kernelBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(daemon.pid) ?? 0);
      kernelPeak = Math.max(kernelPeak, kernelTcpBytes());
    }, 25);
    let reply;
    try {
      reply = await client.send({ op: 'hold', dns: `${SUBNET}.1`, dnsPort: daemon.dnsPort, name: `${mask}.jt6h.test`, port: 80, count, timeoutMs: 45_000 }, 60_000);
    } finally {
      clearInterval(sampler);
    }
    const key = `${mask} x${count}`;
    if (!reply.ok) {
      out.skipped[key] = `client failed: ${reply.error ?? 'unknown'}`;
      return;
    }
    const times = reply.firstByteMs as number[];
    const fb = summarize(times, 'ms');
    out.metrics[`${key} first byte`] = fb;
    out.values[`${key} served`] = reply.served!;
    out.values[`${key} failed`] = reply.failed!;
    out.values[`${key} SYN retransmissions`] = reply.synRetrans;
    out.values[`${key} daemon RSS growth bytes per connection`] = Math.round((rssPeak - rssBefore) / count);
    out.values[`${key} kernel TCP memory growth bytes per connection`] = Math.round((kernelPeak - kernelBefore) / count);
    if (reply.errors && !Array.isArray(reply.errors) && Object.keys(reply.errors).length)
      out.notes.push(`${key}: client errors ${JSON.stringify(reply.errors).slice(0, 300)}`);
    rows.push([
      mask,
      count,
      reply.served!,
      reply.failed!,
      reply.synRetrans,
      fb.min,
      fb.median,
      fb.p99,
      fb.max,
      Math.round((rssPeak - rssBefore) / count),
      Math.round((kernelPeak - kernelBefore) / count),
    ]);
  } finally {
    await client.close();
  }
}

async function summonsPerSecond(ctx: BenchContext, out: SectionResult): Promise<void> {
  const bursts = ctx.quick ? [4] : [4, 16];
  const n = Math.max(...bursts);
  const services = Array.from({ length: n }, (_, i) => `name=jt6s${i},dns=s${i}.jt6s.test,ip=${SUMMON_SUBNET}.${10 + i},exec=${busyboxHttpdExec()},ready=tcp:80,mask=none`);
  const daemon = await startJitsu({
    root: ctx.root,
    flags: ['--bridge', 'jt6sbr', '-d', '0', '--idle-timeout', '1', '--sweep-interval', '0.1', '--workers', '2', '--log-level', 'info'],
    services,
    extraBind: [`${SUMMON_SUBNET}.1`],
    readyTimeoutMs: 120_000,
  });
  const rows: (string | number | null)[][] = [];
  try {
    const client = await startProbeClient(ctx.root, 'jt6sbr', 's', `${SUMMON_SUBNET}.250/24`);
    try {
      for (const burst of bursts) {
        const rounds = ctx.quick ? 1 : 3;
        const rates: number[] = [];
        const answers: number[] = [];
        let failed = 0;
        for (let r = 0; r < rounds && Date.now() < ctx.deadline - 5000; r++) {
          for (let i = 0; i < n; i++) await waitStopped(daemon, `jt6s${i}`, 15_000);
          const names = Array.from({ length: burst }, (_, i) => `s${i}.jt6s.test`);
          const reply = await client.send({ op: 'resolve-many', dns: `${SUMMON_SUBNET}.1`, dnsPort: daemon.dnsPort, names, timeoutMs: 30_000 }, 40_000);
          if (!reply.ok || !reply.answerMs?.length) {
            out.skipped[`summons x${burst}`] = `burst failed: ${reply.error ?? JSON.stringify(reply.errors)}`.slice(0, 500);
            break;
          }
          if ((reply.failed ?? 0) > 0) {
            // Failed boots answer SERVFAIL: counted, with the cause from the daemon's own status.
            const causes = (await daemon.status()).services.filter((x) => x.lastError).map((x) => `${x.service}: ${x.lastError}`);
            failed += reply.failed!;
            out.notes.push(`summons x${burst} round ${r + 1}: ${reply.failed} of ${burst} boots failed (SERVFAIL); ${causes.slice(0, 2).join('; ').slice(0, 400)}`);
          }
          rates.push((reply.answerMs.length * 1000) / Math.max(...reply.answerMs));
          answers.push(...reply.answerMs);
        }
        if (!rates.length) continue;
        const rate = summarize(rates, 'summons/s');
        const answer = summarize(answers, 'ms');
        out.metrics[`summons per second x${burst}`] = rate;
        out.metrics[`summon burst x${burst}: answer time`] = answer;
        out.values[`summon burst x${burst}: failed boots`] = failed;
        rows.push([burst, rates.length, failed, rate.median, rate.min, rate.max, answer.median, answer.p99]);
      }
    } finally {
      await client.close();
    }
  } finally {
    await daemon.stop();
  }
  out.tables.push({
    title: 'Summons per second: N stopped process services (busybox httpd) summoned by N concurrent DNS queries, unmasked, --workers 2 (rate = answered boots / time to the last answer)',
    columns: ['N', 'rounds', 'failed boots (SERVFAIL)', 'summons/s (median)', 'min', 'max', 'answer ms median', 'answer ms p99'],
    rows,
  });
}

export const holdBenchmark: Benchmark = {
  id: 'hold',
  title: 'Connections held during one boot, and summons per second',
  async run(ctx: BenchContext, out: SectionResult) {
    const count = ctx.quick ? 500 : 10_000;
    const server = benchDemoServer();
    const services = HOLD_MASKS.map((m, i) => {
      const exec = `exec="${process.execPath} ${server} --port 80 --delay-ms ${BOOT_DELAY_MS}"`;
      const keys = m === 'activate' ? 'port=80,mask=activate' : `ready=tcp:80,mask=${m}`;
      return `name=jt6h${i},dns=${m}.jt6h.test,ip=${SUBNET}.${10 + i},backend=process,${exec},${keys}`;
    });
    const rows: (string | number | null)[][] = [];
    let daemon: RunningDaemon | undefined;
    try {
      daemon = await startJitsu({
        root: ctx.root,
        flags: ['--bridge', BRIDGE, '--synjitsu', BRIDGE, '-d', '0', '--idle-timeout', '600', '--boot-timeout', '30', '--log-level', 'info'],
        services,
        extraBind: [`${SUBNET}.1`],
      });
    } catch (err) {
      out.skipped['held connections'] = `daemon with --synjitsu did not start: ${err instanceof Error ? err.message : String(err)}`.slice(0, 500);
    }
    if (daemon) {
      try {
        for (const m of HOLD_MASKS) {
          if (Date.now() > ctx.deadline - 30_000) {
            out.skipped[`${m} x${count}`] = 'out of time';
            continue;
          }
          ctx.log(`hold: ${count} connections, mask ${m}`);
          await holdOnce(ctx, daemon, m, count, out, rows);
        }
      } finally {
        await daemon.stop();
      }
    }
    out.tables.push({
      title: `${count} connections opened at once right after the DNS answer, to a process service booting for ${BOOT_DELAY_MS / 1000} s (node HTTP server)`,
      columns: ['mask', 'connections', 'served', 'failed', 'SYN retrans', 'first byte min ms', 'median', 'p99', 'max', 'daemon RSS B/conn', 'kernel TCP mem B/conn'],
      rows,
    });
    try {
      await summonsPerSecond(ctx, out);
    } catch (err) {
      out.skipped['summons'] = `failed: ${err instanceof Error ? err.message : String(err)}`.slice(0, 500);
    }
    out.notes.push(
      'Memory per held connection: growth of the daemon\'s RSS (peak during the hold minus before) and of the kernel\'s TCP buffer memory (/proc/net/sockstat, machine-wide, so other traffic adds noise), divided by the connections; the kernel\'s socket structs themselves are not in either figure.',
      '`activate` holds connections in the service\'s listen backlog (jitsu raises somaxconn to 65535 inside each service namespace, so a 10k burst is queued, not dropped). `park` holds SYNs, but a 2 s boot exceeds the 1 s SYN RTO, so clients retransmit (at 1 s, 3 s, ...) until the replay; `handshake` completes handshakes in Synjitsu and buffers the requests.',
    );
  },
};
