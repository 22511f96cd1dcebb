import { ConfigError } from './errors.js';

export type KeyValue = readonly [key: string, value: string];

/**
 * Split a service argument `key=value,key=value` (the original Jitsu syntax). A value may be
 * double-quoted to contain commas: `cmdline="console=ttyS0,115200"`; inside the quotes `\"` is a quote.
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
      // Inside quotes, \" and \\ stand for " and \ (so exec= can carry a quoted argument).
      value = '';
      j++;
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\' && (text[j + 1] === '"' || text[j + 1] === '\\')) j++;
        value += text[j];
        j++;
      }
      if (j >= text.length) throw new ConfigError(key, `unterminated quote in "${text}"`);
      j++;
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
