#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { loadConfigFile, mergeRaw } from '../config/file.js';
import { DEMO_IP, DEMO_NAME, demoConfig } from '../config/embedded.js';
import { validateConfig, type RawConfig } from '../config/validate.js';
import { startDaemon, VERSION } from '../daemon.js';
import { parseResolvConf } from '../dns/forwarder.js';
import { errorCode, errorMessage } from '../errors.js';
import { createLogger } from '../observe/log.js';
import { parseArgv } from './argv.js';
import { helpText } from './help.js';

function resolvConfNameservers(): string[] {
  try {
    return parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8'));
  } catch {
    return [];
  }
}

/** Exit 2 with one line: the contract for every bad flag, key or value. */
function usageError(message: string): never {
  process.stderr.write(`jitsu: ${message}\n`);
  process.exit(2);
}

async function main(argv: readonly string[]): Promise<void> {
  let config;
  let demo = false;
  try {
    const parsed = parseArgv(argv);
    if (parsed.help) {
      process.stdout.write(helpText());
      return;
    }
    if (parsed.version) {
      process.stdout.write(`jitsu ${VERSION}\n`);
      return;
    }
    let raw: RawConfig = parsed.raw;
    if (parsed.configFile !== undefined) raw = mergeRaw(loadConfigFile(parsed.configFile), raw);
    if (parsed.demo) raw = mergeRaw(demoConfig(), raw);
    demo = parsed.demo;
    config = validateConfig(raw, { defaultForwarders: resolvConfNameservers });
  } catch (err) {
    if (errorCode(err) === 'CONFIG_INVALID') usageError(errorMessage(err));
    throw err;
  }
  if (config.services.length === 0) usageError('no services: give SERVICE arguments (dns=NAME,ip=ADDR,...), --config FILE, or --demo');

  const logger = createLogger(config.logLevel);
  let daemon;
  try {
    daemon = await startDaemon(config, logger);
  } catch (err) {
    const code = errorCode(err);
    const hint = code === 'NETWORK_SETUP' && process.getuid?.() !== 0 ? ' (bridges and network namespaces need root)' : '';
    logger.error('startup failed', { code: code ?? 'UNKNOWN', cause: errorMessage(err) + hint });
    if (code === 'CONFIG_INVALID') usageError(errorMessage(err));
    process.exit(1);
  }

  if (demo) {
    const port = daemon.dnsAddresses()[0]?.port ?? config.port;
    const metrics = daemon.metricsPort();
    process.stdout.write(
      [
        '',
        `Jitsu demo is running. In another terminal:`,
        `  dig @127.0.0.1 -p ${port} ${DEMO_NAME}    # first query boots the demo service; answer ${DEMO_IP}`,
        `  curl http://${DEMO_IP}/                   # the summoned service replies`,
        ...(metrics !== undefined ? [`  curl http://127.0.0.1:${metrics}/status    # state, boot count, boot time`] : []),
        `Idle for 2×TTL (${2 * config.ttl} s) it is stopped again; the next query boots it. Ctrl-C stops the demo and cleans up.`,
        '',
      ].join('\n') + '\n',
    );
  }

  let signalled = 0;
  const shutdown = (signal: string): void => {
    if (++signalled > 1) {
      logger.warn('second signal: exiting without cleanup', { signal });
      process.exit(1);
    }
    logger.info('shutting down', { signal });
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('shutdown failed', { cause: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGHUP', () => logger.info('SIGHUP ignored: restart the daemon to reload (running services are adopted)'));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`jitsu: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
