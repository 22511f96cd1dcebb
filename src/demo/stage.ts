/**
 * Puts a copy of the demo HTTP server where an unprivileged, confined service can run it: the
 * checkout it came from may sit under /tmp (hidden by the service's private /tmp) or under a
 * directory only root may enter. The copy needs nothing but Node's own modules.
 */
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built server: next to this module in dist/, or (this module loaded from src/ by vitest) its mirror there. */
export const BUILT_DEMO_SERVER = fileURLToPath(
  import.meta.url.endsWith('.ts') ? new URL('../../dist/src/demo/http.js', import.meta.url) : new URL('./http.js', import.meta.url),
);

/** Copies the server to `dir/demo/http.js` (world-readable, ESM) and returns that path. */
export function stageDemoServer(dir: string): string {
  const target = join(dir, 'demo');
  mkdirSync(target, { recursive: true, mode: 0o755 });
  for (const d of [dir, target]) chmodSync(d, 0o755);
  // The copy is an ES module like its original: say so, or Node reads it as CommonJS.
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n', { mode: 0o644 });
  const server = join(target, 'http.js');
  copyFileSync(BUILT_DEMO_SERVER, server);
  chmodSync(server, 0o644);
  return server;
}
