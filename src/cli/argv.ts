import { ConfigError } from '../config/errors.js';
import { flagByName } from '../config/options.js';
import { parseServiceArg } from '../config/service-arg.js';
import type { RawConfig } from '../config/validate.js';

export interface ParsedArgv {
  raw: RawConfig;
  configFile?: string;
  demo: boolean;
  help: boolean;
  version: boolean;
}

/** `-b ADDR`, `--bind ADDR`, `--bind=ADDR`; positional arguments are services; `--` ends options. */
export function parseArgv(argv: readonly string[]): ParsedArgv {
  const flags = new Map<string, string[]>();
  const services: RawConfig['services'] = [];
  const result: ParsedArgv = { raw: { flags, services }, demo: false, help: false, version: false };
  let onlyPositional = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (onlyPositional || !arg.startsWith('-') || arg === '-') {
      services.push(parseServiceArg(arg));
      continue;
    }
    if (arg === '--') {
      onlyPositional = true;
      continue;
    }
    const long = arg.startsWith('--');
    const body = long ? arg.slice(2) : arg.slice(1);
    const eq = long ? body.indexOf('=') : -1;
    const name = eq === -1 ? body : body.slice(0, eq);
    const spec = flagByName(name);
    if (!spec || (long && spec.long !== name) || (!long && spec.short !== name)) {
      throw new ConfigError(arg, 'unknown option: see jitsu --help');
    }
    let value: string | undefined;
    if (spec.metavar === undefined) {
      if (eq !== -1) throw new ConfigError(`--${spec.long}`, 'takes no value');
    } else if (eq !== -1) {
      value = body.slice(eq + 1);
    } else {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`--${spec.long}`, `needs a value: --${spec.long} ${spec.metavar}`);
    }
    switch (spec.long) {
      case 'help':
        result.help = true;
        break;
      case 'version':
        result.version = true;
        break;
      case 'demo':
        result.demo = true;
        break;
      case 'config':
        if (result.configFile !== undefined) throw new ConfigError('--config', 'given twice; give one file');
        result.configFile = value!;
        break;
      default: {
        const list = flags.get(spec.long) ?? [];
        list.push(value!);
        flags.set(spec.long, list);
      }
    }
  }
  return result;
}
