import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JitsuError } from '../../errors.js';

let cached: string | undefined;

/**
 * Path of the `jitsu-activate` launcher: $JITSU_ACTIVATE, else build/Release/jitsu-activate in the
 * project root, found by walking up from this module (works from src/ under vitest and from dist/src/).
 */
export function activatePath(): string {
  if (cached) return cached;
  const fromEnv = process.env['JITSU_ACTIVATE'];
  if (fromEnv) return (cached = fromEnv);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'build', 'Release', 'jitsu-activate');
    if (existsSync(candidate)) return (cached = candidate);
    if (existsSync(join(dir, 'binding.gyp'))) break;
    dir = dirname(dir);
  }
  throw new JitsuError('NATIVE_UNAVAILABLE', 'build/Release/jitsu-activate is missing: run `npm run build:native` (or set JITSU_ACTIVATE)', {});
}
