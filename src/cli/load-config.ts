import { readFileSync } from 'node:fs';
import { demoConfig } from '../config/embedded.js';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile, mergeRaw } from '../config/file.js';
import type { Config } from '../config/types.js';
import { validateConfig, type RawConfig } from '../config/validate.js';
import { parseResolvConf } from '../dns/forwarder.js';
import type { ParsedArgv } from './argv.js';

function resolvConfNameservers(): string[] {
  try {
    return parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8'));
  } catch {
    return [];
  }
}

/** Flags and services as given: the config file (read now) under the command line, plus --demo. */
export function rawConfigOf(parsed: ParsedArgv): RawConfig {
  let raw: RawConfig = parsed.raw;
  if (parsed.configFile !== undefined) raw = mergeRaw(loadConfigFile(parsed.configFile), raw);
  if (parsed.demo) raw = mergeRaw(demoConfig(), raw);
  return raw;
}

/**
 * The validated configuration of a command line: what the daemon starts with, what a reload reads
 * again (the file anew, the command line as it was) and what `jitsu check` checks. Throws ConfigError.
 */
export function resolveConfig(parsed: ParsedArgv): Config {
  const config = validateConfig(rawConfigOf(parsed), { defaultForwarders: resolvConfNameservers });
  if (config.services.length === 0) throw new ConfigError('no services', 'give SERVICE arguments (dns=NAME,ip=ADDR,...), --config FILE, or --demo');
  return config;
}
