/**
 * Section `dns`: queries per second for names of running services, with dnsperf, against our daemon
 * (full CLI, services pre-warmed), the DNS layer alone, dnsmasq, unbound (1 and 2 threads), and the
 * fastest authoritative servers, Knot DNS (one UDP worker) and NSD (one server process, RRL off) —
 * same names, same query file, same machine, one run. Ratios are to dnsmasq. The daemon also runs with
 * RRL off and on for a client that is not loopback (RRL exempts loopback): dnsperf then sends from
 * the host's address on the services' bridge.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deferCleanup } from '../lib/cleanup.js';
import { startJitsu, type RunningDaemon } from '../lib/daemon.js';
import { freePort, queryA } from '../lib/net.js';
import { busyboxHttpdExec } from '../lib/www.js';
import { childPids, cpuSeconds, sleep, start, tail, trackCpu, which, type Proc } from '../lib/proc.js';
import { fmt } from '../lib/stats.js';
import type { Benchmark, BenchContext, SectionResult } from '../lib/types.js';

const SERVICES = [
  { name: 'jt6q0', ip: '10.205.1.10' },
  { name: 'jt6q1', ip: '10.205.1.11' },
];
const NAMES_PER_SERVICE = 4;
const ZONE = 'jt6.test';
/** dnsperf: one client thread (the server gets the other core), enough sockets and queries in flight. */
const DNSPERF_ARGS = ['-T', '1', '-c', '8', '-q', '200', '-t', '2'];

interface NameEntry {
  name: string;
  ip: string;
  service: string;
}

function nameTable(): NameEntry[] {
  const out: NameEntry[] = [];
  for (const s of SERVICES) for (let i = 0; i < NAMES_PER_SERVICE; i++) out.push({ name: `${s.name}-n${i}.${ZONE}`, ip: s.ip, service: s.name });
  return out;
}

/** A server under test: started, answering on 127.0.0.1:port, stopped in finally. */
interface Peer {
  id: string;
  label: string;
  port: number;
  /** Where dnsperf sends from and to (default 127.0.0.1). */
  address?: string;
  /** Processes whose CPU counts as the server's. */
  pids: () => number[];
  stop(): Promise<void>;
}

interface DnsperfResult {
  qps: number;
  completedPct: number;
  lost: number;
  avgLatencyMs: number;
  clientCpu: number;
  serverCpu: number;
  wallSeconds: number;
}

function parseDnsperf(text: string): { qps: number; completedPct: number; lost: number; avgLatencyMs: number } {
  const num = (re: RegExp): number => {
    const m = text.match(re);
    if (!m) throw new Error(`dnsperf output lacks ${re}: ${tail(text)}`);
    return Number(m[1]);
  };
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completedPct: num(/Queries completed:\s+\d+\s+\(([\d.]+)%\)/),
    lost: num(/Queries lost:\s+(\d+)/),
    avgLatencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
}

async function runDnsperf(peer: Peer, queryFile: string, seconds: number): Promise<DnsperfResult> {
  const serverBefore = peer.pids().reduce((s, pid) => s + (cpuSeconds(pid) ?? 0), 0);
  const t0 = Date.now();
  const from = peer.address === undefined ? [] : ['-a', peer.address];
  const proc = start('dnsperf', ['-s', peer.address ?? '127.0.0.1', ...from, '-p', String(peer.port), '-d', queryFile, '-l', String(seconds), ...DNSPERF_ARGS]);
  const cpu = trackCpu(proc.pid);
  const killer = setTimeout(() => void proc.kill(1000), (seconds + 15) * 1000);
  const code = await proc.exited;
  clearTimeout(killer);
  const clientCpu = cpu.stop();
  const wallSeconds = (Date.now() - t0) / 1000;
  const serverCpu = peer.pids().reduce((s, pid) => s + (cpuSeconds(pid) ?? 0), 0) - serverBefore;
  if (code !== 0) throw new Error(`dnsperf exited ${code}: ${tail(proc.stderr() || proc.stdout())}`);
  return { ...parseDnsperf(proc.stdout()), clientCpu, serverCpu, wallSeconds };
}

async function checkAnswers(peer: Peer, names: readonly NameEntry[]): Promise<void> {
  for (const n of names) {
    const a = await queryA(peer.address ?? '127.0.0.1', peer.port, n.name, 3000);
    if (a.rcode !== 0 || !a.addresses.includes(n.ip)) {
      throw new Error(`${peer.label} answered ${n.name} with rcode ${a.rcode} [${a.addresses.join(',')}], expected ${n.ip}`);
    }
  }
}

async function processPeer(id: string, label: string, cmd: string, args: string[], port: number, ready: RegExp | null): Promise<Peer> {
  const proc: Proc = start(cmd, args);
  const stop = deferCleanup(() => proc.kill());
  try {
    if (ready) await proc.waitFor(ready, 15_000);
    else await waitUdp(port, proc);
  } catch (err) {
    await stop();
    throw err;
  }
  return { id, label, port, pids: () => [proc.pid], stop };
}

/** Waits until something answers DNS on the port (peers that print nothing when ready). */
async function waitUdp(port: number, proc: Proc): Promise<void> {
  const until = Date.now() + 15_000;
  for (;;) {
    try {
      await queryA('127.0.0.1', port, `probe.${ZONE}`, 200);
      return;
    } catch {
      if (Date.now() > until) throw new Error(`nothing answered on 127.0.0.1:${port}: ${tail(proc.stderr())}`);
      const exited = await Promise.race([proc.exited.then(() => true), sleep(100).then(() => false)]);
      if (exited) throw new Error(`server exited: ${tail(proc.stderr() || proc.stdout())}`);
    }
  }
}

async function dnsmasqPeer(names: readonly NameEntry[]): Promise<Peer> {
  const port = await freePort();
  const args = [
    '--no-daemon',
    '--conf-file=/dev/null',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--pid-file=',
    '--user=root',
    ...names.map((n) => `--address=/${n.name}/${n.ip}`),
  ];
  return processPeer('dnsmasq', 'dnsmasq', 'dnsmasq', args, port, null);
}

async function unboundPeer(names: readonly NameEntry[], threads: number, dir: string): Promise<Peer> {
  const port = await freePort();
  const conf = join(dir, `unbound-${threads}.conf`);
  writeFileSync(
    conf,
    [
      'server:',
      `  directory: "${dir}"`,
      '  chroot: ""',
      '  username: ""',
      '  pidfile: ""',
      '  do-daemonize: no',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 0',
      '  interface: 127.0.0.1',
      `  port: ${port}`,
      '  do-ip6: no',
      `  num-threads: ${threads}`,
      '  so-reuseport: yes',
      '  access-control: 127.0.0.0/8 allow',
      '  module-config: "iterator"',
      `  local-zone: "${ZONE}." static`,
      ...names.map((n) => `  local-data: "${n.name}. 60 IN A ${n.ip}"`),
      'remote-control:',
      '  control-enable: no',
      '',
    ].join('\n'),
  );
  return processPeer(`unbound-${threads}t`, `unbound (${threads} thread${threads > 1 ? 's' : ''})`, 'unbound', ['-d', '-c', conf], port, null);
}

/**
 * The names as an authoritative zone file (Knot and NSD serve zones, not local data): SOA, NS with
 * its glue, and the same A records every other peer answers.
 */
function zoneFile(names: readonly NameEntry[]): string {
  return [
    `$ORIGIN ${ZONE}.`,
    '$TTL 60',
    `@ IN SOA ns.${ZONE}. hostmaster.${ZONE}. 1 3600 600 86400 60`,
    `@ IN NS ns.${ZONE}.`,
    'ns IN A 127.0.0.1',
    ...names.map((n) => `${n.name}. IN A ${n.ip}`),
    '',
  ].join('\n');
}

/** Knot DNS with one UDP worker (and one TCP, one background): the single-core figure, like unbound 1t. */
async function knotPeer(names: readonly NameEntry[], dir: string): Promise<Peer> {
  const port = await freePort();
  const home = join(dir, 'knot');
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, `${ZONE}.zone`), zoneFile(names));
  const conf = join(home, 'knot.conf');
  writeFileSync(
    conf,
    [
      'server:',
      `    rundir: "${home}"`,
      `    listen: 127.0.0.1@${port}`,
      '    udp-workers: 1',
      '    tcp-workers: 1',
      '    background-workers: 1',
      'log:',
      '  - target: stderr',
      '    any: warning',
      'database:',
      `    storage: "${home}"`,
      'control:',
      `    listen: "${home}/knot.sock"`,
      'template:',
      '  - id: default',
      `    storage: "${home}"`,
      'zone:',
      `  - domain: ${ZONE}`,
      `    file: "${home}/${ZONE}.zone"`,
      '',
    ].join('\n'),
  );
  // knotd stays in the foreground unless given -d; one process, its workers are threads.
  return processPeer('knot-1w', 'Knot DNS (1 UDP worker)', 'knotd', ['-c', conf], port, null);
}

/** A process and all its descendants (NSD's server process is a grandchild of the one we start). */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length && out.length < 64; i++) out.push(...childPids(out[i]!));
  return out;
}

/**
 * NSD with one server process and RRL off (Debian builds it with --enable-ratelimit, whose default
 * would limit dnsperf's single source). Its CPU is that of the whole tree: the process we start
 * becomes xfrd, its child the main process, whose child serves the queries.
 */
async function nsdPeer(names: readonly NameEntry[], dir: string): Promise<Peer> {
  const port = await freePort();
  const home = join(dir, 'nsd');
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, `${ZONE}.zone`), zoneFile(names));
  const conf = join(home, 'nsd.conf');
  writeFileSync(
    conf,
    [
      'server:',
      '    server-count: 1',
      `    ip-address: 127.0.0.1@${port}`,
      '    do-ip6: no',
      '    username: ""',
      '    chroot: ""',
      `    zonesdir: "${home}"`,
      '    database: ""',
      `    pidfile: "${home}/nsd.pid"`,
      `    xfrdfile: "${home}/xfrd.state"`,
      `    zonelistfile: "${home}/zone.list"`,
      `    xfrdir: "${home}"`,
      `    logfile: "${home}/nsd.log"`,
      '    verbosity: 0',
      '    rrl-ratelimit: 0',
      '    rrl-whitelist-ratelimit: 0',
      'remote-control:',
      '    control-enable: no',
      'zone:',
      `    name: ${ZONE}`,
      `    zonefile: "${home}/${ZONE}.zone"`,
      '',
    ].join('\n'),
  );
  const peer = await processPeer('nsd-1p', 'NSD (1 server process, RRL off)', 'nsd', ['-d', '-c', conf], port, null);
  const leader = peer.pids()[0]!;
  return { ...peer, pids: () => processTree(leader) };
}

async function dnsLayerPeer(ctx: BenchContext, names: readonly NameEntry[], workers: number, udp: 'auto' | 'dgram'): Promise<Peer> {
  const port = await freePort();
  const proc = start(process.execPath, [
    join(ctx.root, 'dist/bench/macro/dns-layer-server.js'),
    ...(workers ? ['--workers', String(workers)] : []),
    '--udp',
    udp,
    String(port),
    ...names.map((n) => `${n.name}=${n.ip}`),
  ]);
  const stop = deferCleanup(() => proc.kill());
  let path: string;
  try {
    path = (await proc.waitFor(/listening \d+ udp=(\w+)/, 15_000))[1]!;
    await waitUdp(port, proc);
  } catch (err) {
    await stop();
    throw err;
  }
  const id = `jitsu-dns-layer${udp === 'dgram' ? '-dgram' : ''}${workers ? `-${workers}w` : ''}`;
  const label = `jitsu DNS layer only, ${path} UDP${workers ? `, ${workers} cluster workers` : ''}`;
  // Workers are the primary's children: their CPU is the server's too.
  return { id, label, port, pids: () => [proc.pid, ...childPids(proc.pid)], stop };
}

/** The host's address on the services' bridge (the .1 of their /24): a local source that is not loopback. */
const BRIDGE_HOST = '10.205.1.1';

/**
 * `rrl`: undefined = the daemon's defaults, queried over loopback (exempt from RRL); 'off' / 'on' =
 * queried from BRIDGE_HOST with --rrl-rate 0, or with a rate no run reaches (every answer pays for
 * its bucket, none is limited: the cost of RRL, not its effect).
 */
async function daemonPeer(ctx: BenchContext, names: readonly NameEntry[], rrl?: 'off' | 'on'): Promise<Peer> {
  const services = SERVICES.map(
    (s) => `name=${s.name},${names.filter((n) => n.service === s.name).map((n) => `dns=${n.name}`).join(',')},ip=${s.ip},exec=${busyboxHttpdExec()},private_tmp=false`,
  );
  const daemon: RunningDaemon = await startJitsu({
    root: ctx.root,
    flags: ['--bridge', 'jt6qbr', '-d', '0', '--idle-timeout', '3600', '--log-level', 'info', ...(rrl === undefined ? [] : ['--rrl-rate', rrl === 'on' ? '1000000000' : '0'])],
    services,
    ...(rrl === undefined ? {} : { extraBind: [BRIDGE_HOST] }),
  });
  try {
    // Pre-warm: the first query of each service boots it; later ones are answers for a running service.
    for (const s of SERVICES) await queryA('127.0.0.1', daemon.dnsPort, names.find((n) => n.service === s.name)!.name, 30_000);
    const st = await daemon.status();
    const notReady = st.services.filter((s) => s.state !== 'ready');
    if (notReady.length) throw new Error(`services not ready after warm-up: ${notReady.map((s) => `${s.service}=${s.state} ${s.lastError ?? ''}`).join('; ')}`);
  } catch (err) {
    const log = daemon.log();
    await daemon.stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}; daemon log: ${log}`);
  }
  if (rrl === undefined) return { id: 'jitsu-daemon', label: 'jitsu daemon (CLI, running services)', port: daemon.dnsPort, pids: () => [daemon.pid], stop: daemon.stop };
  return {
    id: `jitsu-daemon-rrl-${rrl}`,
    label: `jitsu daemon, client ${BRIDGE_HOST} (not loopback), RRL ${rrl === 'on' ? 'on (accounting every answer, rate never reached)' : 'off (--rrl-rate 0)'}`,
    port: daemon.dnsPort,
    address: BRIDGE_HOST,
    pids: () => [daemon.pid],
    stop: daemon.stop,
  };
}

export const dnsQpsBenchmark: Benchmark = {
  id: 'dns',
  title: 'DNS queries per second for names of running services (dnsperf)',
  async run(ctx: BenchContext, out: SectionResult) {
    if (!(await which('dnsperf'))) {
      out.skipped['all'] = 'dnsperf is not installed (apt-get install dnsperf)';
      return;
    }
    const names = nameTable();
    const dir = mkdtempSync(join(tmpdir(), 'jt6-bench-dns-'));
    const removeDir = deferCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const queryFile = join(dir, 'queries.txt');
    // The same file for every server: each name, type A, in rotation.
    writeFileSync(queryFile, Array.from({ length: 64 }, (_, i) => `${names[i % names.length]!.name} A`).join('\n') + '\n');

    const makers: { id: string; need?: string; pkg?: string; make: () => Promise<Peer> }[] = [
      { id: 'dnsmasq', need: 'dnsmasq', make: () => dnsmasqPeer(names) },
      { id: 'unbound-1t', need: 'unbound', make: () => unboundPeer(names, 1, dir) },
      { id: 'unbound-2t', need: 'unbound', make: () => unboundPeer(names, 2, dir) },
      { id: 'knot-1w', need: 'knotd', pkg: 'knot', make: () => knotPeer(names, dir) },
      { id: 'nsd-1p', need: 'nsd', pkg: 'nsd', make: () => nsdPeer(names, dir) },
      { id: 'jitsu-dns-layer', make: () => dnsLayerPeer(ctx, names, 0, 'auto') },
      { id: 'jitsu-dns-layer-dgram', make: () => dnsLayerPeer(ctx, names, 0, 'dgram') },
      { id: 'jitsu-dns-layer-2w', make: () => dnsLayerPeer(ctx, names, 2, 'auto') },
      { id: 'jitsu-daemon', make: () => daemonPeer(ctx, names) },
      { id: 'jitsu-daemon-rrl-off', make: () => daemonPeer(ctx, names, 'off') },
      { id: 'jitsu-daemon-rrl-on', make: () => daemonPeer(ctx, names, 'on') },
    ];
    // Rounds interleave the servers, so a burst of load from elsewhere hits them all alike.
    const rounds = ctx.quick ? 1 : 3;
    const results = new Map<string, { label: string; runs: DnsperfResult[] }>();
    try {
      for (let round = 0; round < rounds; round++) {
        for (const m of makers) {
          if (out.skipped[m.id]) continue;
          if (m.need && !(await which(m.need))) {
            out.skipped[m.id] = `${m.need} is not installed${m.pkg ? ` (apt-get install ${m.pkg})` : ''}`;
            continue;
          }
          if (Date.now() + (ctx.dnsSeconds + 10) * 1000 > ctx.deadline && results.has(m.id)) continue;
          let peer: Peer | undefined;
          try {
            peer = await m.make();
            await checkAnswers(peer, names);
            ctx.log(`dns: ${peer.label}, round ${round + 1}/${rounds}, ${ctx.dnsSeconds} s`);
            const r = await runDnsperf(peer, queryFile, ctx.dnsSeconds);
            const entry = results.get(m.id) ?? { label: peer.label, runs: [] };
            entry.runs.push(r);
            results.set(m.id, entry);
          } catch (err) {
            out.skipped[m.id] = `failed: ${err instanceof Error ? err.message : String(err)}`.slice(0, 600);
            ctx.log(`dns: ${m.id} ${out.skipped[m.id]}`);
          } finally {
            await peer?.stop();
          }
        }
      }
    } finally {
      await removeDir();
    }

    const median = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const base = results.get('dnsmasq');
    const baseQps = base ? median(base.runs.map((r) => r.qps)) : undefined;
    const rows: (string | number | null)[][] = [];
    for (const [id, { label, runs }] of results) {
      const qps = median(runs.map((r) => r.qps));
      const serverCores = median(runs.map((r) => r.serverCpu / r.wallSeconds));
      const clientCores = median(runs.map((r) => r.clientCpu / r.wallSeconds));
      out.values[`${id} qps`] = Math.round(qps);
      if (baseQps) out.values[`${id} ratio to dnsmasq`] = Number((qps / baseQps).toFixed(3));
      out.values[`${id} avg latency ms`] = Number(median(runs.map((r) => r.avgLatencyMs)).toFixed(3));
      out.values[`${id} server cores`] = Number(serverCores.toFixed(2));
      out.values[`${id} dnsperf cores`] = Number(clientCores.toFixed(2));
      out.values[`${id} lost`] = runs.reduce((s, r) => s + r.lost, 0);
      // CPU per answered query: comparable across servers even when the machine is busy.
      const cpuPerQuery = median(runs.map((r) => (r.serverCpu / (r.qps * r.wallSeconds)) * 1e6));
      out.values[`${id} server CPU µs per query`] = Number(cpuPerQuery.toFixed(2));
      rows.push([
        label,
        Math.round(qps),
        baseQps ? `${(qps / baseQps).toFixed(2)}×` : null,
        runs.map((r) => fmt(r.qps)).join(' / '),
        median(runs.map((r) => r.avgLatencyMs)),
        runs.reduce((s, r) => s + r.lost, 0),
        serverCores,
        cpuPerQuery,
        clientCores,
      ]);
    }
    out.tables.push({
      title: `UDP A queries for ${names.length} names of running services, dnsperf ${DNSPERF_ARGS.join(' ')} -l ${ctx.dnsSeconds}`,
      columns: ['server', 'qps (median)', 'ratio to dnsmasq', 'qps per round', 'avg latency ms', 'lost', 'server CPU (cores)', 'server CPU µs/query', 'dnsperf CPU (cores)'],
      rows,
    });
    out.notes.push(
      'dnsperf and the server share the same 2 cores (and the machine is shared with other work): the client takes most of one core, so figures are lower bounds for a dedicated server; the CPU columns show who used what.',
      'Server CPU µs/query = server CPU time / queries answered: what one answer costs, less sensitive to the load of other jobs than qps. Compare with the micro benchmark of the handler\'s cached-answer path to see how much of it is the DNS logic and how much the socket path.',
      'Every server answers the same names (checked with a query per name before each run) from the same query file; jitsu answers are authoritative A records of running services (the cached-answer path).',
      `RRL off/on: the same daemon queried from ${BRIDGE_HOST} (its address on the services' bridge, so the client is not loopback, which RRL exempts); "on" uses a rate no run reaches, so every answer pays for its bucket and none is limited.`,
    );
  },
};
