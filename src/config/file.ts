import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { FLAGS } from './options.js';
import { parseServiceArg, type KeyValue } from './service-arg.js';
import type { RawConfig } from './validate.js';

const FILE_KEYS = new Set(FLAGS.filter((f) => !f.cliOnly).map((f) => f.long));

function scalar(key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new ConfigError(key, `expected a string, number or boolean, got ${value === null ? 'null' : typeof value}`);
}

function values(key: string, value: unknown): string[] {
  return Array.isArray(value) ? value.map((v) => scalar(key, v)) : [scalar(key, value)];
}

/** A service in a file is either the command-line string or a map of the same keys (lists for repeats). */
function serviceFromFile(entry: unknown, index: number): KeyValue[] {
  if (typeof entry === 'string') return parseServiceArg(entry);
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new ConfigError(`services[${index}]`, 'must be a "key=value,..." string or a map of service keys');
  }
  const pairs: KeyValue[] = [];
  for (const [key, value] of Object.entries(entry)) {
    for (const v of values(`services[${index}].${key}`, value)) pairs.push([key, v]);
  }
  return pairs;
}

/** Parse the text of a YAML or JSON config file (JSON is YAML) into the same raw form as argv. */
export function parseConfigText(text: string, source: string): RawConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError('--config', `${source} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return { flags: new Map(), services: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('--config', `${source} must hold a map of options`);
  const flags = new Map<string, string[]>();
  let services: KeyValue[][] = [];
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'services') {
      if (!Array.isArray(value)) throw new ConfigError('services', `in ${source} must be a list`);
      services = value.map(serviceFromFile);
    } else if (FILE_KEYS.has(key)) {
      flags.set(key, values(key, value));
    } else {
      throw new ConfigError(key, `unknown key in ${source}: use the long flag names (see jitsu --help) and services:`);
    }
  }
  return { flags, services };
}

export function loadConfigFile(path: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfigText(text, path);
}

/** Command-line values win over the file's; services from both are kept, file first. */
export function mergeRaw(file: RawConfig, cli: RawConfig): RawConfig {
  const flags = new Map(file.flags);
  for (const [key, value] of cli.flags) flags.set(key, value);
  return { flags, services: [...file.services, ...cli.services] };
}
