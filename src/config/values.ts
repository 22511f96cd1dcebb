import { isIP } from 'node:net';
import { errorMessage } from '../errors.js';
import { parseCidr as parseAddressCidr } from '../network/addr.js';
import { ConfigError } from './errors.js';

/** Value parsers shared by flags, config-file keys and service keys: each names the key and the fix. */

export function parseNumber(key: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value)) throw new ConfigError(key, `"${raw}" is not a number (expected ${min}..${max})`);
  if (value < min || value > max) throw new ConfigError(key, `${raw} is out of range (expected ${min}..${max})`);
  return value;
}

export function parseInteger(key: string, raw: string, min: number, max: number): number {
  const value = parseNumber(key, raw, min, max);
  if (!Number.isInteger(value)) throw new ConfigError(key, `${raw} is not a whole number (expected ${min}..${max})`);
  return value;
}

export function parseEnum<T extends string>(key: string, raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(key, `"${raw}" is not valid: use one of ${allowed.join('|')}`);
  return raw as T;
}

export function parseBoolean(key: string, raw: string): boolean {
  if (/^(true|yes|1|on)$/i.test(raw)) return true;
  if (/^(false|no|0|off)$/i.test(raw)) return false;
  throw new ConfigError(key, `"${raw}" is not a boolean: use true or false`);
}

export function parseIp(key: string, raw: string): { ip: string; family: 4 | 6 } {
  const family = isIP(raw);
  if (family === 0) throw new ConfigError(key, `"${raw}" is not an IPv4 or IPv6 address`);
  return { ip: raw, family: family as 4 | 6 };
}

export function parseHostPort(key: string, raw: string): { host: string; port: number } {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(raw) ?? /^([^:]+):(\d+)$/.exec(raw);
  if (!match) throw new ConfigError(key, `"${raw}" is not HOST:PORT (e.g. 127.0.0.1:9153 or [::1]:9153)`);
  parseIp(key, match[1]!);
  return { host: match[1]!, port: parseInteger(key, match[2]!, 0, 65535) };
}

export function parseCidr(key: string, raw: string): { ip: string; family: 4 | 6; prefixLength: number } {
  try {
    const { address, family, prefixLength } = parseAddressCidr(raw);
    return { ip: address, family, prefixLength };
  } catch (err) {
    throw new ConfigError(key, errorMessage(err));
  }
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** A DNS name: lowercased, trailing dot removed, every label valid, at least two labels (it needs a zone). */
export function parseDnsName(key: string, raw: string): string {
  const name = raw.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) throw new ConfigError(key, `"${raw}" is not a valid DNS name`);
  const labels = name.split('.');
  if (labels.length < 2) throw new ConfigError(key, `"${raw}" needs a zone: use a name with a dot, e.g. ${name}.jitsu.test`);
  for (const label of labels) {
    if (!LABEL.test(label)) throw new ConfigError(key, `"${raw}" has an invalid label "${label}" (letters, digits, - and _ only, 1-63 chars)`);
  }
  return name;
}

const IFNAME = /^[a-zA-Z0-9_.-]{1,15}$/;

export function parseIfName(key: string, raw: string): string {
  if (!IFNAME.test(raw)) throw new ConfigError(key, `"${raw}" is not a valid interface name (1-15 of letters, digits, _ . -)`);
  return raw;
}
