/**
 * The DNS layer alone (src/dns server + handler, static summoner, no services or backends), for the
 * "DNS layer only" row of the qps benchmark:
 *   node dist/bench/macro/dns-layer-server.js [--workers N] [--udp auto|native|dgram] PORT NAME=IP...
 * With --workers N, N node:cluster workers serve the port (src/dns `clusterShared`), one per core.
 * `--udp` picks src/dns's UDP path. Prints `listening PORT udp=PATH` (once per worker) when ready;
 * exits on SIGTERM.
 */
import cluster from 'node:cluster';
import { createDnsHandler } from '../../src/dns/handler.js';
import { createDnsServer } from '../../src/dns/server.js';
import { createStaticSummoner } from '../../src/dns/static-summoner.js';
import { createLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';

async function main(): Promise<void> {
  let argv = process.argv.slice(2);
  let workers = 0;
  let udp: 'auto' | 'native' | 'dgram' = 'auto';
  for (;;) {
    if (argv[0] === '--workers') workers = Number(argv[1]);
    else if (argv[0] === '--udp') udp = argv[1] as typeof udp;
    else break;
    argv = argv.slice(2);
  }
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
  const [portText, ...pairs] = argv;
  const port = Number(portText);
  if (!Number.isInteger(port) || pairs.length === 0) throw new Error('usage: dns-layer-server.js PORT NAME=IP...');
  const summoner = createStaticSummoner(
    pairs.map((p) => {
      const [name, ip] = p.split('=');
      return { service: name!, names: [name!], ipv4: [ip!], ttl: 60 };
    }),
  );
  const logger = createLogger('warn');
  const metrics = new MetricsRegistry();
  const server = await createDnsServer({ addresses: ['127.0.0.1'], port, handler: createDnsHandler({ summoner, metrics, logger }), logger, metrics, clusterShared: workers > 0, udp });
  process.stdout.write(`listening ${server.port} udp=${server.udpPath}\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`dns-layer-server: ${String(err)}\n`);
  process.exit(1);
});
