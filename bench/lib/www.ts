/** A document root for the tiny HTTP services benchmarks boot (busybox httpd, or a container's). */
import { mkdirSync, writeFileSync } from 'node:fs';

export const WWW_DIR = '/tmp/jt6-bench-www';

export function ensureWww(): string {
  mkdirSync(WWW_DIR, { recursive: true });
  writeFileSync(`${WWW_DIR}/index.html`, 'summoned by jitsu\n');
  return WWW_DIR;
}

/** `exec=` of a process service serving HTTP on port 80 that starts in about a millisecond. */
export function busyboxHttpdExec(): string {
  return `busybox httpd -f -p 80 -h ${ensureWww()}`;
}
