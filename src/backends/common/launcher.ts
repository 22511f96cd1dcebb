import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JitsuError } from '../../errors.js';

const cached = new Map<string, string>();

/**
 * Path of a file the native build puts in build/Release: $`envVar`, else build/Release/`file` in the
 * project root, found by walking up from this module (works from src/ under vitest and from dist/src/).
 */
function nativeBuildFile(file: string, envVar: string): string {
  const known = cached.get(file);
  if (known) return known;
  const fromEnv = process.env[envVar];
  if (fromEnv) return cached.set(file, fromEnv).get(file)!;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'build', 'Release', file);
    if (existsSync(candidate)) return cached.set(file, candidate).get(file)!;
    if (existsSync(join(dir, 'binding.gyp'))) break;
    dir = dirname(dir);
  }
  throw new JitsuError('NATIVE_UNAVAILABLE', `build/Release/${file} is missing: run \`npm run build:native\` (or set ${envVar})`, {});
}

/** The `jitsu-activate` launcher (native/activate.c). */
export function activatePath(): string {
  return nativeBuildFile('jitsu-activate', 'JITSU_ACTIVATE');
}

/** The LD_PRELOAD library that hands pre-bound sockets to servers binding their own port (native/preload.c). */
export function preloadPath(): string {
  return nativeBuildFile('jitsu-preload.so', 'JITSU_PRELOAD');
}
