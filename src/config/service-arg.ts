import { ConfigError } from './errors.js';

export type KeyValue = readonly [key: string, value: string];

/**
 * Split a service argument `key=value,key=value` (the original Jitsu syntax). A value may be
 * double-quoted to contain commas: `cmdline="console=ttyS0,115200"`.
 */
export function parseServiceArg(text: string): KeyValue[] {
  const pairs: KeyValue[] = [];
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    const comma = text.indexOf(',', i);
    if (eq === -1 || (comma !== -1 && comma < eq)) {
      const piece = text.slice(i, comma === -1 ? undefined : comma);
      throw new ConfigError('service', `"${piece}" in "${text}" is not key=value (separate pairs with commas)`);
    }
    const key = text.slice(i, eq).trim();
    if (key === '') throw new ConfigError('service', `empty key before "=" in "${text}"`);
    let j = eq + 1;
    let value: string;
    if (text[j] === '"') {
      const close = text.indexOf('"', j + 1);
      if (close === -1) throw new ConfigError(key, `unterminated quote in "${text}"`);
      value = text.slice(j + 1, close);
      j = close + 1;
      if (j < text.length && text[j] !== ',') throw new ConfigError(key, `expected "," after the quoted value in "${text}"`);
    } else {
      const end = text.indexOf(',', j);
      value = text.slice(j, end === -1 ? undefined : end);
      j = end === -1 ? text.length : end;
    }
    pairs.push([key, value]);
    i = j + 1;
  }
  if (pairs.length === 0) throw new ConfigError('service', 'empty service argument: give at least dns=NAME,ip=ADDR');
  return pairs;
}
