/**
 * Stand-alone DNS server with a static name table, for dnsperf/dig runs against the DNS layer
 * alone (no services, no backends):
 *   node dist/src/dns/bench-serve.js [--port N] [--address A]... [--forward IP[:PORT]] [--many N]
 * `--workers N` runs N node:cluster workers (a multi-core experiment): with the native UDP path
 * each worker binds its own SO_REUSEPORT socket on the (fixed, non-zero) port; with `--udp dgram`
 * they share the primary's socket. `--udp native|dgram|auto` picks the UDP path (default auto).
 * Serves demo.jitsu.test (A 10.0.0.1, AAAA fd00::1), v4only.jitsu.test, and many.jitsu.test with
 * N A records (default 60, for truncation tests). Prints `listening PORT` when ready.
 */
import cluster from 'node:cluster';
import { createLogger } from '../observe/log.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { createForwarder, type Forwarder } from './forwarder.js';
import { createDnsHandler } from './handler.js';
import { createDnsServer } from './server.js';
import { createStaticSummoner } from './static-summoner.js';

function arg(name: string): string[] {
  const out: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) if (argv[i] === name && i + 1 < argv.length) out.push(argv[++i]!);
  return out;
}

async function main(): Promise<void> {
  const workers = Number(arg('--workers')[0] ?? 0);
  if (workers > 0 && cluster.isPrimary) {
    for (let i = 0; i < workers; i++) cluster.fork();
    const stopAll = (): void => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill();
      process.exit(0);
    };
    process.on('SIGINT', stopAll);
    process.on('SIGTERM', stopAll);
    return;
  }
  const port = Number(arg('--port')[0] ?? 0);
  const addresses = arg('--address');
  const many = Number(arg('--many')[0] ?? 60);
  const forward = arg('--forward')[0];
  const logger = createLogger((arg('--log-level')[0] as 'info' | undefined) ?? 'warn');
  const metrics = new MetricsRegistry();
  const summoner = createStaticSummoner([
    { service: 'demo', names: ['demo.jitsu.test'], ipv4: ['10.0.0.1'], ipv6: ['fd00::1'], ttl: 60 },
    { service: 'v4only', names: ['v4only.jitsu.test'], ipv4: ['10.0.0.2'], ttl: 60 },
    {
      service: 'many',
      names: ['many.jitsu.test'],
      ipv4: Array.from({ length: many }, (_, i) => `10.1.${i >> 8}.${i & 255}`),
      ttl: 60,
    },
  ]);
  let forwarder: Forwarder | undefined;
  if (forward) {
    const [address, p] = forward.includes(']') ? [forward.slice(1, forward.indexOf(']')), forward.split(']:')[1]] : forward.split(':');
    forwarder = createForwarder({ upstreams: [{ address: address!, port: Number(p ?? 53) }], metrics, logger });
  }
  const handler = createDnsHandler({ summoner, forwarder, metrics, logger });
  const server = await createDnsServer({
    addresses: addresses.length ? addresses : ['127.0.0.1'],
    port,
    handler,
    logger,
    metrics,
    clusterShared: workers > 0,
    udp: (arg('--udp')[0] as 'auto' | 'native' | 'dgram' | undefined) ?? 'auto',
  });
  process.stdout.write(`listening ${server.port} udp=${server.udpPath}\n`);
  const stop = (): void => {
    if (arg('--metrics').length) process.stderr.write(metrics.render() + `udp ${JSON.stringify(server.udpStats() ?? null)}\n`);
    void server.close().then(() => forwarder?.close()).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench-serve: ${String(err)}\n`);
  process.exit(1);
});
