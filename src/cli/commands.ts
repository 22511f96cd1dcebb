/**
 * The control commands: `jitsu status|start NAME|stop NAME|reload` talk to the running daemon
 * through its control socket (src/control); `jitsu check` validates a configuration without
 * starting anything. Each prints one result and exits 0, or prints one line and exits non-zero:
 * 2 for a bad argument or configuration, 1 when the daemon is not there or the command failed.
 */
import { controlRequest } from '../control/client.js';
import type { ReloadReport } from '../control/protocol.js';
import { ConfigError } from '../config/errors.js';
import { flagByName } from '../config/options.js';
import { DEFAULT_STATE_DIR } from '../config/validate.js';
import { errorCode, errorMessage } from '../errors.js';
import type { RuntimeStatus } from '../services/runtime.js';
import { parseArgv, type ParsedArgv } from './argv.js';
import { rawConfigOf, resolveConfig } from './load-config.js';
import { formatStatusHeader, formatStatusTable } from './status-table.js';

export const COMMANDS = ['status', 'start', 'stop', 'reload', 'check'] as const;
export type Command = (typeof COMMANDS)[number];

export function isCommand(word: string | undefined): word is Command {
  return (COMMANDS as readonly string[]).includes(word ?? '');
}

/** One line for each command, for --help. */
export const COMMAND_HELP: readonly [usage: string, help: string][] = [
  ['status [--state DIR]', 'the running daemon\'s services: state, backend, IP, boots, last boot, idle time, last error'],
  ['start NAME [--state DIR]', 'boot a service now, as a query would; waits until it is ready (exit 1 with the error if it fails)'],
  ['stop NAME [--state DIR]', 'stop a running service with the configured --mode'],
  ['reload [--state DIR]', 're-read the config file (as SIGHUP does) and report what changed, or why it was refused'],
  ['check --config FILE', 'validate a configuration without starting anything: exit 0 with a summary, or 2 with the error'],
];

/** Words that are not options (a service name), and the options (with their values) for parseArgv. */
export function splitOperands(args: readonly string[]): { operands: string[]; options: string[] } {
  const operands: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      operands.push(arg);
      continue;
    }
    options.push(arg);
    const long = arg.startsWith('--');
    const name = long ? arg.slice(2) : arg.slice(1);
    if (!name.includes('=') && flagByName(name)?.metavar !== undefined && i + 1 < args.length) options.push(args[++i]!);
  }
  return { operands, options };
}

/** The state dir whose daemon a command talks to: --state (or --persistdb), else the config file's, else the default. */
export function stateDirOf(parsed: ParsedArgv): string {
  const flags = rawConfigOf(parsed).flags;
  return flags.get('state')?.at(-1) ?? flags.get('persistdb')?.at(-1) ?? DEFAULT_STATE_DIR;
}

function reloadSummary(report: Extract<ReloadReport, { ok: true }>): string {
  const names = (list: readonly string[]): string => (list.length > 0 ? list.join(', ') : 'none');
  const lines = [
    `reloaded: added ${names(report.added)}; removed ${names(report.removed)}; restarted ${names(report.changed)}; ${report.unchanged.length} unchanged`,
    ...(report.options.length > 0 ? [`options applied: ${report.options.map((o) => `--${o}`).join(', ')}`] : []),
    ...report.kept.map((k) => `not applied (needs a restart): ${k.option} stays ${k.running} (file says ${k.wanted})`),
  ];
  return lines.join('\n') + '\n';
}

function serviceLine(verb: string, s: RuntimeStatus): string {
  const facts = [s.state === 'ready' ? 'running' : s.state, s.pid !== null ? `pid ${s.pid}` : undefined, s.lastBootMs !== null && verb === 'started' ? `boot ${s.lastBootMs.toFixed(1)} ms` : undefined];
  return `${s.service}: ${verb} (${facts.filter(Boolean).join(', ')})\n`;
}

function exactlyOneName(command: Command, operands: readonly string[]): string {
  if (operands.length !== 1) throw new ConfigError(command, `needs one service name: jitsu ${command} NAME (see jitsu status for the names)`);
  return operands[0]!;
}

async function execute(command: Command, args: readonly string[]): Promise<string> {
  const { operands, options } = splitOperands(args);
  const parsed = parseArgv(options);
  if (command === 'check') {
    if (operands.length > 0) throw new ConfigError('check', `takes no operands (got ${operands.join(' ')}): jitsu check --config FILE`);
    if (parsed.configFile === undefined) throw new ConfigError('check', 'needs the file to check: jitsu check --config FILE');
    const config = resolveConfig(parsed);
    const names = config.services.map((s) => s.name);
    return `${parsed.configFile}: valid: ${names.length} service${names.length === 1 ? '' : 's'} (${names.join(', ')}); DNS on ${config.bind.join(',')} port ${config.port}; state ${config.stateDir}\n`;
  }
  if (command !== 'start' && command !== 'stop' && operands.length > 0) throw new ConfigError(command, `takes no operands (got ${operands.join(' ')})`);
  const stateDir = stateDirOf(parsed);
  switch (command) {
    case 'status': {
      const status = await controlRequest(stateDir, { command: 'status' });
      return formatStatusHeader(status) + formatStatusTable(status.services);
    }
    case 'start':
      return serviceLine('started', await controlRequest(stateDir, { command: 'start', service: exactlyOneName(command, operands) }));
    case 'stop':
      return serviceLine('stopped', await controlRequest(stateDir, { command: 'stop', service: exactlyOneName(command, operands) }));
    case 'reload': {
      const report = await controlRequest(stateDir, { command: 'reload' });
      if (!report.ok) throw new CommandFailed(`reload refused, the running configuration keeps serving: ${report.error}`);
      return reloadSummary(report);
    }
  }
}

/** A command the daemon carried out and reported as failed. */
class CommandFailed extends Error {}

/** Runs a control command; resolves with the exit status. */
export async function runCommand(command: Command, args: readonly string[]): Promise<number> {
  try {
    process.stdout.write(await execute(command, args));
    return 0;
  } catch (err) {
    process.stderr.write(`jitsu ${command}: ${errorMessage(err)}\n`);
    return errorCode(err) === 'CONFIG_INVALID' ? 2 : 1;
  }
}
