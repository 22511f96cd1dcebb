import { JitsuError } from '../errors.js';

/** A bad flag, key or value. The message is one line naming the key and the fix; the CLI exits 2. */
export class ConfigError extends JitsuError {
  constructor(key: string, message: string) {
    super('CONFIG_INVALID', `${key}: ${message}`, { key });
    this.name = 'ConfigError';
  }
}
