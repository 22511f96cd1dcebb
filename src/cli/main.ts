#!/usr/bin/env node
import { fstatSync } from 'node:fs';
import { DEMO_IP, DEMO_NAME } from '../config/embedded.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { startDaemon, VERSION } from '../daemon.js';
import { errorCode, errorMessage } from '../errors.js';
import { DEFAULT_LOG_STYLE, createLogger, journalStyle, openLogFile, stderrOutput, type LogOutput, type LogStyle } from '../observe/log.js';
import { notifierFromProcessEnv } from '../observe/notify.js';
import { parseArgv, type ParsedArgv } from './argv.js';
import { isCommand, runCommand } from './commands.js';
import { helpText } from './help.js';
import { ProcessLifecycle } from './lifecycle.js';
import { resolveConfig } from './load-config.js';

// A closed or failing stdout/stderr (a consumer that exited: EPIPE; a terminal gone: EIO; EBADF)
// reports an 'error' event, which without a listener is an uncaught exception. The banner and
// usage lines are best effort; the log output (src/observe/log.ts) counts what it could not write.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

const OPEN_FAILURES: Record<string, string> = {
  EISDIR: 'is a directory',
  ENOENT: 'its directory does not exist',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'is not writable',
  EPERM: 'is not writable',
  EROFS: 'is on a read-only file system',
};

/** stderr, or the --log-file (a path that cannot be appended to is a bad flag value). */
function openLogOutput(config: Config): LogOutput {
  const path = config.logFile;
  if (path === undefined) return stderrOutput();
  try {
    return openLogFile(path, {
      // Where the loss of the file can still be noted; its lines are counted from now on.
      onLost: (err) => process.stderr.write(`jitsu: log file ${path} failed (${errnoCode(err) ?? err.message}): lines are dropped until SIGUSR1 reopens it\n`),
    });
  } catch (err) {
    const reason = OPEN_FAILURES[errnoCode(err) ?? ''] ?? errorMessage(err);
    throw new ConfigError('--log-file', `cannot append to ${path}: ${reason}: give a writable file in an existing directory`);
  }
}

/** A --log-file is plain; stderr that is systemd's journal stream gets the journal's style. */
function logStyleOf(config: Config): LogStyle {
  if (config.logFile !== undefined) return { ...DEFAULT_LOG_STYLE, format: config.logFormat };
  let stderr: { dev: number; ino: number } | undefined;
  try {
    stderr = fstatSync(2);
  } catch {
    stderr = undefined;
  }
  return journalStyle(config.logFormat, process.env['JOURNAL_STREAM'], stderr);
}

/**
 * Test-only fault injection: JITSU_TEST_FAULT (read here and nowhere else) lets the integration
 * tests prove that a fault in any component ends in an orderly shutdown. Comma-separated:
 *   exception | rejection   on SIGUSR2, throw an uncaught exception / leave a rejection unhandled
 *   startup                 throw while start-up is under way
 *   shutdown                throw once more right after a shutdown began (a second fault)
 */
function armTestFaults(): void {
  const stages = new Set((process.env['JITSU_TEST_FAULT'] ?? '').split(',').filter(Boolean));
  const fault = (what: string): Error => new Error(`JITSU_TEST_FAULT: injected ${what}`);
  const raise = (what: string): void => void setImmediate(() => {
    throw fault(what);
  });
  if (stages.has('startup')) raise('exception during start-up');
  if (stages.has('exception')) process.on('SIGUSR2', () => raise('uncaught exception'));
  if (stages.has('rejection')) process.on('SIGUSR2', () => void Promise.reject(fault('unhandled rejection')));
  if (stages.has('shutdown')) {
    let raised = false;
    const again = (): void => {
      if (!raised) raise('second fault during shutdown');
      raised = true;
    };
    for (const event of ['uncaughtException', 'unhandledRejection', 'SIGTERM'] as const) process.once(event, again);
  }
}

/** Exit 2 with one line: the contract for every bad flag, key or value. */
function usageError(message: string): never {
  process.stderr.write(`jitsu: ${message}\n`);
  process.exit(2);
}

async function main(argv: readonly string[]): Promise<void> {
  if (isCommand(argv[0])) {
    process.exitCode = await runCommand(argv[0], argv.slice(1));
    return;
  }
  let config;
  let output: LogOutput;
  let parsed: ParsedArgv;
  try {
    parsed = parseArgv(argv);
    if (parsed.help) {
      process.stdout.write(helpText());
      return;
    }
    if (parsed.version) {
      process.stdout.write(`jitsu ${VERSION}\n`);
      return;
    }
    config = resolveConfig(parsed);
    output = openLogOutput(config);
  } catch (err) {
    if (errorCode(err) === 'CONFIG_INVALID') usageError(errorMessage(err));
    throw err;
  }

  const logger = createLogger(config.logLevel, (line) => output.write(line), {}, logStyleOf(config));
  const lifecycle = new ProcessLifecycle(logger, output);
  lifecycle.install();
  armTestFaults();
  const startedFrom = parsed;
  let daemon;
  try {
    daemon = await startDaemon(config, logger, {
      signal: lifecycle.startup.signal,
      loadConfig: () => resolveConfig(startedFrom),
      setLogLevel: (level) => logger.setLevel(level),
      notifier: notifierFromProcessEnv(logger),
    });
  } catch (err) {
    if (errorCode(err) === 'CONFIG_INVALID') usageError(errorMessage(err));
    lifecycle.startFailed(err);
    return;
  }
  const dropped = daemon.metrics.counter('jitsu_log_lines_dropped_total', 'Log lines not written: the log destination was backed up or had failed');
  dropped.inc(output.dropped);
  output.onDrop = (lines) => dropped.inc(lines);
  lifecycle.started(daemon);

  if (parsed.demo) {
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
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`jitsu: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
