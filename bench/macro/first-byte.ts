/**
 * Section `firstbyte`: first-byte latency for a cold process service under each boot mask —
 * unmasked (`none`: the DNS answer waits for ready), `activate` (sockets bound before the process
 * starts), `park` and `handshake` (Synjitsu on the bridge; the answer goes out at once) — with the
 * client's SYN-retransmission counters, for a quick boot and for a boot longer than the SYN RTO.
 * Also the daemon's ready -> handover overhead for the masked boots.
 */
import { startProbeClient } from '../lib/client.js';
import { startJitsu, type RunningDaemon, benchDemoServer } from '../lib/daemon.js';
import { statCells } from '../lib/report.js';
import { summarize } from '../lib/stats.js';
import { coldSummon, preparesAhead } from '../lib/summon.js';
import type { Benchmark, BenchContext, SectionResult } from '../lib/types.js';
import { qemuKeys, qemuMissing } from './boot.js';

const BRIDGE = 'jt6fbr';
const SUBNET = '10.205.3';
const MASKS = ['none', 'activate', 'park', 'handshake'] as const;
type Mask = (typeof MASKS)[number];

interface Profile {
  id: string;
  label: string;
  masks: readonly Mask[];
  /** Seconds a service stays up after its query: longer than its boot plus one first byte. */
  idleTimeout: number;
  /** The service argument's backend part for a mask. */
  keys(ctx: BenchContext, mask: Mask): string;
  /** Runs per mask (bounded further by the section's time slice). */
  runs: (ctx: BenchContext) => number;
  missing(ctx: BenchContext): Promise<string | undefined>;
  /** Share of the section budget. */
  share: number;
}

function nodeServer(delayMs: number): (ctx: BenchContext, mask: Mask) => string {
  return (_ctx, mask) => {
    const exec = `exec="${process.execPath} ${benchDemoServer()} --port 80 --delay-ms ${delayMs}"`;
    const keys = mask === 'activate' ? 'port=80,mask=activate' : `ready=tcp:80,mask=${mask}`;
    return `backend=process,${exec},${keys}`;
  };
}

const PROFILES: Profile[] = [
  {
    id: 'quick',
    label: 'process: node HTTP server',
    masks: MASKS,
    idleTimeout: 1.5,
    keys: nodeServer(0),
    runs: (ctx) => Math.min(ctx.runs, ctx.quick ? 3 : 12),
    missing: async () => undefined,
    share: 0.2,
  },
  {
    id: 'slow',
    label: 'process: node HTTP server, 1.5 s init (> SYN RTO)',
    masks: MASKS,
    idleTimeout: 3,
    keys: nodeServer(1500),
    runs: (ctx) => Math.min(ctx.runs, ctx.quick ? 1 : 6),
    missing: async () => undefined,
    share: 0.3,
  },
  {
    id: 'qemu',
    label: 'qemu microVM (TCG)',
    masks: ['none', 'park', 'handshake'],
    idleTimeout: 4,
    keys: (_ctx, mask) => qemuKeys().replace('mask=none', `mask=${mask}`),
    runs: (ctx) => Math.min(ctx.runs, ctx.quick ? 1 : 6),
    missing: qemuMissing,
    share: 0.25,
  },
  {
    id: 'qemu-restore',
    label: 'qemu microVM (TCG), restored from its template in a pre-spawned QEMU',
    masks: ['none', 'park', 'handshake'],
    idleTimeout: 4,
    keys: (_ctx, mask) => `${qemuKeys().replace('mask=none', `mask=${mask}`)},snapshot=template,prespawn=on`,
    runs: (ctx) => Math.min(ctx.runs, ctx.quick ? 1 : 6),
    missing: qemuMissing,
    share: 0.25,
  },
];

function serviceArg(ctx: BenchContext, profile: Profile, mask: Mask): string {
  const index = MASKS.indexOf(mask);
  return `name=jt6f${index},dns=${mask}.jt6f.test,ip=${SUBNET}.${10 + index},${profile.keys(ctx, mask)}`;
}

async function startDaemon(ctx: BenchContext, profile: Profile, masks: readonly Mask[], synjitsu: boolean): Promise<RunningDaemon> {
  return startJitsu({
    root: ctx.root,
    flags: [
      '--bridge',
      BRIDGE,
      ...(synjitsu ? ['--synjitsu', BRIDGE] : []),
      '-d',
      '0',
      '--idle-timeout',
      String(profile.idleTimeout),
      '--sweep-interval',
      '0.05',
      '--boot-timeout',
      '30',
      '--log-level',
      'info',
    ],
    services: masks.map((m) => serviceArg(ctx, profile, m)),
    extraBind: [`${SUBNET}.1`],
  });
}

export const firstByteBenchmark: Benchmark = {
  id: 'firstbyte',
  title: 'First byte from a cold service: masked (activate, park, handshake) vs unmasked',
  async run(ctx: BenchContext, out: SectionResult) {
    const began = Date.now();
    const rows: (string | number | null)[][] = [];
    const handoverRows: (string | number | null)[][] = [];
    let sliceStart = began;
    for (const profile of PROFILES) {
      const sliceEnd = sliceStart + (ctx.deadline - began) * profile.share;
      sliceStart = sliceEnd;
      const why = await profile.missing(ctx);
      if (why) {
        out.skipped[profile.id] = why;
        continue;
      }
      ctx.log(`firstbyte: ${profile.label}, masks ${profile.masks.join(',')}`);
      let masks: Mask[] = [...profile.masks];
      let daemon: RunningDaemon | undefined;
      try {
        daemon = await startDaemon(ctx, profile, masks, true);
      } catch (err) {
        const why = `the daemon did not start with --synjitsu: ${err instanceof Error ? err.message : String(err)}`.slice(0, 500);
        out.skipped[`${profile.id}/park`] = why;
        out.skipped[`${profile.id}/handshake`] = why;
        masks = profile.masks.filter((m) => m === 'none' || m === 'activate');
        daemon = await startDaemon(ctx, profile, masks, false).catch((e: unknown) => {
          out.skipped[`${profile.id}/none+activate`] = `daemon did not start: ${e instanceof Error ? e.message : String(e)}`.slice(0, 500);
          return undefined;
        });
      }
      if (!daemon) continue;
      const d = daemon;
      const data = new Map<Mask, { fb: number[]; dns: number[]; connect: number[]; synRetrans: number; retrans: number; handover: number[]; errors: string[] }>();
      for (const m of masks) data.set(m, { fb: [], dns: [], connect: [], synRetrans: 0, retrans: 0, handover: [], errors: [] });
      try {
        const client = await startProbeClient(ctx.root, BRIDGE, 'f', `${SUBNET}.250/24`);
        try {
          const runs = profile.runs(ctx);
          // One uncounted warm-up per mask, then the runs round-robin over masks, so while one
          // service is being reaped another is measured.
          for (let r = -1; r < runs && Date.now() < sliceEnd; r++) {
            for (const m of masks) {
              const entry = data.get(m)!;
              if (entry.errors.length >= 3) continue;
              const service = `jt6f${MASKS.indexOf(m)}`;
              const s = await coldSummon(d, client, service, { dns: `${SUBNET}.1`, dnsPort: d.dnsPort, name: `${m}.jt6f.test`, port: 80 }, {
                stoppedTimeoutMs: (profile.idleTimeout + 20) * 1000,
                runTimeoutMs: 30_000,
                standby: preparesAhead(profile.keys(ctx, m)),
              });
              if (!s.reply.ok) {
                entry.errors.push(s.reply.error ?? 'unknown');
                continue;
              }
              if (r < 0) continue;
              entry.fb.push(s.reply.firstByteMs as number);
              entry.dns.push(s.reply.dnsMs!);
              entry.connect.push(s.reply.connectMs!);
              entry.synRetrans += s.reply.synRetrans;
              entry.retrans += s.reply.retransSegs;
              if (s.orchestration.ready_to_handover !== undefined) entry.handover.push(s.orchestration.ready_to_handover * 1e6);
            }
          }
        } finally {
          await client.close();
        }
      } finally {
        await d.stop();
      }
      for (const m of masks) {
        const e = data.get(m)!;
        const key = `${profile.id}/${m}`;
        if (e.fb.length === 0) {
          out.skipped[key] = `no successful run: ${e.errors[e.errors.length - 1] ?? 'out of time'}`.slice(0, 500);
          continue;
        }
        if (e.errors.length) out.notes.push(`${key}: ${e.errors.length} failed run(s), last: ${e.errors[e.errors.length - 1]!.slice(0, 300)}`);
        const fb = summarize(e.fb, 'ms');
        out.metrics[`${key} first byte`] = fb;
        out.metrics[`${key} DNS answer`] = summarize(e.dns, 'ms');
        out.metrics[`${key} connect`] = summarize(e.connect, 'ms');
        out.values[`${key} SYN retransmissions`] = e.synRetrans;
        out.values[`${key} retransmitted segments`] = e.retrans;
        rows.push([profile.label, m, ...statCells(fb), out.metrics[`${key} DNS answer`]!.median, out.metrics[`${key} connect`]!.median, e.synRetrans, e.retrans]);
        if (e.handover.length) {
          out.metrics[`${key} overhead ready_to_handover`] = summarize(e.handover, 'µs');
          handoverRows.push([profile.label, m, ...statCells(out.metrics[`${key} overhead ready_to_handover`])]);
        }
      }
    }
    out.tables.push({
      title: 'DNS query sent -> first HTTP byte (ms), cold service, per mask',
      columns: ['boot', 'mask', 'min', 'median', 'p99', 'mean', 'n', 'DNS answer median', 'connected median', 'SYN retrans (sum)', 'retrans segs (sum)'],
      rows,
    });
    out.tables.push({
      title: 'Daemon overhead: service ready -> masked connections handed over (µs, jitsu_orchestration_seconds{step="ready_to_handover"})',
      columns: ['boot', 'mask', 'min', 'median', 'p99', 'mean', 'n'],
      rows: handoverRows,
    });
    out.notes.push(
      '`none`: jitsu answers DNS only once the service is ready, so the client never meets a closed port (first byte ≈ boot); `activate`: the answer waits for the pre-bound sockets, the kernel queues the connection until the server accepts; `park`/`handshake`: the answer goes out at once and Synjitsu holds the SYN (park) or completes the handshake (handshake) until the service is ready.',
      'The qemu rows boot the guest image of scripts/build-guest.sh under TCG (no usable KVM here); `activate` does not apply to VMs. The restore rows use snapshot=template,prespawn=on: the uncounted warm-up boots cold and saves the template, every counted summon restores a copy in a QEMU that waited in -incoming defer.',
      'Counters are the client namespace\'s TcpExt TCPSynRetrans and Tcp RetransSegs, summed over the counted runs (one uncounted warm-up per mask).',
    );
  },
};
