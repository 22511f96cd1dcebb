/**
 * The DNS layer alone (src/dns server + handler, static summoner, no services or backends), for the
 * "DNS layer only" row of the qps benchmark:
 *   node dist/bench/macro/dns-layer-server.js PORT NAME=IP...
 * Prints `listening PORT` when ready; exits on SIGTERM.
 */
import { createDnsHandler } from '../../src/dns/handler.js';
import { createDnsServer } from '../../src/dns/server.js';
import { createStaticSummoner } from '../../src/dns/static-summoner.js';
import { createLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';

async function main(): Promise<void> {
  const [portText, ...pairs] = process.argv.slice(2);
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
  const server = await createDnsServer({ addresses: ['127.0.0.1'], port, handler: createDnsHandler({ summoner, metrics, logger }), logger, metrics });
  process.stdout.write(`listening ${server.port}\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`dns-layer-server: ${String(err)}\n`);
  process.exit(1);
});
