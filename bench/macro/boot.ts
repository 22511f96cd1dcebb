/**
 * Section `boot`: boot latency to first byte for a process, a crun container (run, and created
 * ahead) and a QEMU microVM (cold, restored from a template, resumed from hibernate), each summoned
 * by a real DNS query from a client on the daemon's bridge, unmasked (the answer waits for ready,
 * `-d 0`), plus the daemon's own overhead per boot (query -> backend start call).
 */
import { existsSync } from 'node:fs';
import { startProbeClient } from '../lib/client.js';
import { startJitsu } from '../lib/daemon.js';
import { run, which } from '../lib/proc.js';
import { statCells } from '../lib/report.js';
import { summarize } from '../lib/stats.js';
import { coldSummon, preparesAhead } from '../lib/summon.js';
import type { Benchmark, BenchContext, SectionResult } from '../lib/types.js';
import { busyboxHttpdExec } from '../lib/www.js';

export const BRIDGE = 'jt6bbr';
const SUBNET = '10.205.2';
export const GUEST_DIR = '/var/cache/jitsu/guest';
export const ROOTFS = '/var/cache/jitsu/rootfs/busybox';

export interface BackendCase {
  backend: 'process' | 'container' | 'qemu';
  /** The row's name when a backend has more than one case (default: the backend's). */
  id?: string;
  /** The service argument's backend part (after name/dns/ip). */
  keys: string;
  /** Seconds without a query before the reaper stops it (longer than one boot + first byte). */
  idleTimeout: number;
  /** Share of the section budget. */
  share: number;
  /** Why it cannot run here, or undefined. */
  missing(ctx: BenchContext): Promise<string | undefined>;
}

async function helpText(ctx: BenchContext): Promise<string> {
  const r = await run(process.execPath, [`${ctx.root}dist/src/cli/main.js`, '--help'], 15_000);
  return r.stdout;
}

/** The tiny guest kernel boots faster and needs ACPI off; the stock one needs it on (DESIGN §5). */
export function qemuKeys(): string {
  const tiny = existsSync(`${GUEST_DIR}/vmlinux-tiny`);
  const kernel = tiny ? `${GUEST_DIR}/vmlinux-tiny` : `${GUEST_DIR}/vmlinux-stock`;
  return `backend=qemu,kernel=${kernel},initrd=${GUEST_DIR}/initramfs.cpio.gz,acpi=${tiny ? 'off' : 'on'},memory=128,ready=tcp:80,mask=none`;
}

export async function qemuMissing(ctx: BenchContext): Promise<string | undefined> {
  if (!(await which('qemu-system-x86_64'))) return 'qemu-system-x86_64 is not installed';
  if (!existsSync(`${GUEST_DIR}/initramfs.cpio.gz`) || !(existsSync(`${GUEST_DIR}/vmlinux-tiny`) || existsSync(`${GUEST_DIR}/vmlinux-stock`)))
    return `guest image not built (${GUEST_DIR}; run scripts/build-guest.sh)`;
  const help = await helpText(ctx);
  const line = help.split('\n').find((l) => l.startsWith('Backend qemu'));
  if (!line || /not built yet/.test(line)) return 'the qemu backend is not implemented yet (src/backends/qemu is a placeholder)';
  return undefined;
}

async function containerMissing(): Promise<string | undefined> {
  if (!(await which('crun'))) return 'crun is not installed';
  if (!existsSync(`${ROOTFS}/bin/httpd`) && !existsSync(`${ROOTFS}/bin/busybox`)) return `busybox rootfs missing (${ROOTFS}; run scripts/build-rootfs.sh busybox)`;
  return undefined;
}

export const CASES: BackendCase[] = [
  {
    backend: 'process',
    // The document root is under the host's /tmp (bench/lib/www.ts): no private /tmp for it.
    keys: `backend=process,exec=${busyboxHttpdExec()},ready=tcp:80,mask=none,private_tmp=false`,
    idleTimeout: 0.3,
    share: 0.12,
    missing: async () => ((await which('busybox')) ? undefined : 'busybox is not installed'),
  },
  {
    // The same command launched ahead while stopped, waiting before its exec: a summon is one FIFO write.
    backend: 'process',
    id: 'process-precreate',
    keys: `backend=process,exec=${busyboxHttpdExec()},ready=tcp:80,mask=none,private_tmp=false,precreate=on`,
    idleTimeout: 0.3,
    share: 0.04,
    missing: async () => ((await which('busybox')) ? undefined : 'busybox is not installed'),
  },
  {
    // The same command already serving while stopped, frozen and off the bridge: a summon is SIGCONT + its link back on the bridge.
    backend: 'process',
    id: 'process-warm',
    keys: `backend=process,exec=${busyboxHttpdExec()},ready=tcp:80,mask=none,private_tmp=false,precreate=warm`,
    idleTimeout: 0.3,
    share: 0.04,
    missing: async () => ((await which('busybox')) ? undefined : 'busybox is not installed'),
  },
  {
    backend: 'container',
    keys: `backend=container,rootfs=${ROOTFS},exec="/bin/httpd -f -p 80 -h /www",port=80,mask=none`,
    idleTimeout: 0.3,
    share: 0.13,
    missing: containerMissing,
  },
  {
    // The same container created ahead while stopped (crun create): a summon is crun start + its link on the bridge.
    backend: 'container',
    id: 'container-precreate',
    keys: `backend=container,rootfs=${ROOTFS},exec="/bin/httpd -f -p 80 -h /www",port=80,mask=none,precreate=on`,
    idleTimeout: 0.3,
    share: 0.12,
    missing: containerMissing,
  },
  {
    backend: 'qemu',
    keys: '',
    idleTimeout: 3,
    share: 0.14,
    missing: qemuMissing,
  },
  {
    // The first boot (the warm-up) is cold and saves the template; every measured summon restores a copy.
    backend: 'qemu',
    id: 'qemu-template',
    keys: ',snapshot=template',
    idleTimeout: 3,
    share: 0.12,
    missing: qemuMissing,
  },
  {
    // The same, with the next copy's QEMU started ahead while stopped: a summon only loads its state.
    backend: 'qemu',
    id: 'qemu-prespawn',
    keys: ',snapshot=template,prespawn=on',
    idleTimeout: 3,
    share: 0.1,
    missing: qemuMissing,
  },
  {
    // The next copy restored, reseeded, warmed and paused while stopped: a summon is tap up + cont + reseed.
    backend: 'qemu',
    id: 'qemu-warm',
    keys: ',snapshot=template,prespawn=warm',
    idleTimeout: 3,
    share: 0.1,
    missing: qemuMissing,
  },
  {
    // Every idle stop saves the running guest, RAM included; every measured summon resumes it.
    backend: 'qemu',
    id: 'qemu-hibernate',
    keys: ',stop=hibernate',
    idleTimeout: 3,
    share: 0.09,
    missing: qemuMissing,
  },
];

/** The rows of the boot section, in the order they run (`--rows` picks among them). */
export const BOOT_ROWS: readonly string[] = CASES.map((c) => c.id ?? c.backend);

export const bootBenchmark: Benchmark = {
  id: 'boot',
  title: 'Boot latency to first byte per backend, summoned by a DNS query (unmasked)',
  async run(ctx: BenchContext, out: SectionResult) {
    out.samples = {};
    const began = Date.now();
    const total = ctx.deadline - began;
    const fb: [string, ReturnType<typeof summarize> | undefined][] = [];
    const overheadRows: (string | number | null)[][] = [];
    let sliceStart = began;
    const picked = (c: BackendCase): boolean => ctx.rows.length === 0 || ctx.rows.includes(c.id ?? c.backend);
    const shares = CASES.filter(picked).reduce((sum, c) => sum + c.share, 0);
    for (const [i, c] of CASES.entries()) {
      if (!picked(c)) continue;
      const sliceEnd = sliceStart + (total * c.share) / shares;
      const row = c.id ?? c.backend;
      const why = await c.missing(ctx);
      if (why) {
        out.skipped[row] = why;
        sliceStart = sliceEnd;
        continue;
      }
      ctx.log(`boot: ${row}, up to ${ctx.runs} runs`);
      const service = `jt6b${c.backend[0]}${i}`;
      const name = `${row}.jt6b.test`;
      const ip = `${SUBNET}.${10 + i}`;
      const keys = c.backend === 'qemu' ? qemuKeys() + c.keys : c.keys;
      const daemon = await startJitsu({
        root: ctx.root,
        flags: ['--bridge', BRIDGE, '-d', '0', '--idle-timeout', String(c.idleTimeout), '--sweep-interval', '0.05', '--boot-timeout', '60', '--log-level', 'info'],
        services: [`name=${service},dns=${name},ip=${ip},${keys}`],
        extraBind: [`${SUBNET}.1`],
      }).catch((err: unknown) => {
        out.skipped[row] = `daemon did not start: ${err instanceof Error ? err.message : String(err)}`.slice(0, 600);
        return undefined;
      });
      if (!daemon) {
        sliceStart = sliceEnd;
        continue;
      }
      const firstByte: number[] = [];
      const boot: number[] = [];
      const dns: number[] = [];
      const qts: number[] = [];
      let synRetrans = 0;
      let failures = 0;
      let lastError = '';
      try {
        const client = await startProbeClient(ctx.root, BRIDGE, 'b', `${SUBNET}.250/24`);
        try {
          // The first boot after daemon start pays for cold worker threads and JIT: recorded apart.
          const warm = await coldSummon(daemon, client, service, { dns: `${SUBNET}.1`, dnsPort: daemon.dnsPort, name, port: 80 }, {
            stoppedTimeoutMs: 20_000,
            runTimeoutMs: 60_000,
          });
          if (warm.reply.ok) out.values[`${row} first boot after daemon start, first byte ms`] = Number((warm.reply.firstByteMs as number).toFixed(3));
          else lastError = `warm-up: ${warm.reply.error ?? 'failed'}`;
          for (let r = 0; r < ctx.runs && Date.now() < sliceEnd && failures < 3; r++) {
            const s = await coldSummon(daemon, client, service, { dns: `${SUBNET}.1`, dnsPort: daemon.dnsPort, name, port: 80 }, {
              stoppedTimeoutMs: (c.idleTimeout + 20) * 1000,
              runTimeoutMs: 60_000,
              standby: preparesAhead(keys),
            });
            if (!s.reply.ok) {
              failures++;
              lastError = s.reply.error ?? 'unknown';
              const st = (await daemon.status()).services[0];
              if (st?.lastError) lastError += `; daemon: ${st.lastError}`;
              continue;
            }
            firstByte.push(s.reply.firstByteMs as number);
            dns.push(s.reply.dnsMs!);
            if (s.bootMs !== null) boot.push(s.bootMs);
            if (s.orchestration.query_to_start !== undefined) qts.push(s.orchestration.query_to_start * 1e6);
            synRetrans += s.reply.synRetrans;
          }
        } finally {
          await client.close();
        }
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      } finally {
        await daemon.stop();
      }
      if (firstByte.length === 0) {
        out.skipped[row] = `no successful boot: ${lastError}`.slice(0, 600);
      } else {
        if (lastError) out.notes.push(`${row}: ${failures} failed run(s), last: ${lastError.slice(0, 300)}`);
        out.samples[row] = firstByte.map((x) => Number(x.toFixed(3)));
        const fbStat = summarize(firstByte, 'ms');
        out.metrics[`${row} query to first byte`] = fbStat;
        out.metrics[`${row} boot (daemon: summon to ready)`] = summarize(boot, 'ms');
        out.metrics[`${row} query to answer`] = summarize(dns, 'ms');
        out.metrics[`${row} overhead query_to_start`] = summarize(qts, 'µs');
        out.values[`${row} SYN retransmissions`] = synRetrans;
        fb.push([row, fbStat]);
        overheadRows.push([row, ...statCells(out.metrics[`${row} overhead query_to_start`])]);
      }
      sliceStart = sliceEnd;
    }
    const rows = fb.map(([b, s]) => [
      b,
      ...statCells(s),
      out.metrics[`${b} boot (daemon: summon to ready)`]?.median ?? null,
      out.metrics[`${b} query to answer`]?.median ?? null,
      (out.values[`${b} SYN retransmissions`] as number) ?? null,
    ]);
    for (const [b, why] of Object.entries(out.skipped)) rows.push([b, `skipped: ${why}`, null, null, null, null, null, null, null]);
    out.tables.push({
      title: 'DNS query sent -> first HTTP byte received (ms), cold service, unmasked',
      columns: ['backend', 'min', 'median', 'p99', 'mean', 'n', 'daemon boot median', 'DNS answer median', 'SYN retrans'],
      rows,
    });
    out.tables.push({
      title: "Daemon overhead per boot: query received -> backend start call (µs, from jitsu_orchestration_seconds)",
      columns: ['backend', 'min', 'median', 'p99', 'mean', 'n'],
      rows: overheadRows,
    });
    out.notes.push(
      'Client: a network namespace on the daemon\'s bridge (like a host on the service LAN) running bench/macro/probe-client.js: UDP A query, TCP connect to the answer, HTTP GET, first response byte; TCP counters are that namespace\'s own.',
      'Services: process = busybox httpd in its netns (ready=tcp:80); container = crun with the busybox rootfs (ready = port 80 listening); container-precreate = the same with precreate=on (created ahead while stopped, a summon runs crun start); qemu = microVM (TCG) with the guest image of scripts/build-guest.sh, booted cold; qemu-template = snapshot=template (the warm-up boots cold and saves the template, each counted summon restores a copy); qemu-prespawn = the same with prespawn=on (the next copy\'s QEMU waits in -incoming defer while stopped); qemu-warm = prespawn=warm (the next copy waits restored, reseeded, warmed and paused); process-precreate = precreate=on (the command waits before its exec); process-warm = precreate=warm (the command serves, frozen and off the bridge, while stopped); qemu-hibernate = stop=hibernate (each idle stop saves the guest with its RAM, each counted summon resumes it). Response delay -d 0; the idle reaper stops the service between runs.',
      'Each backend gets one uncounted warm-up boot first (its first byte is in values as "first boot after daemon start").',
      'Rows that prepare the next start while stopped (precreate, prespawn) are summoned once /status shows their standby: a query that comes earlier waits for the prepare (a warm QEMU copy takes ~0.3 s), which would be measured instead.',
      'Overhead samples are exact per boot: the increase of jitsu_orchestration_seconds_sum{step} over the run (exactly one observation each).',
    );
  },
};
