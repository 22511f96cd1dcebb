/**
 * Small-file reads and removals on the summon path. They run once a summon on threads that were idle,
 * where Node's general-purpose calls cost several times what the syscalls do (docs/BENCHMARKS.md,
 * "Fewer syscalls on the warm path"): readFileSync stats the file first and reads /proc's size-0 files
 * in growing chunks; rmSync({ force }) walks a JavaScript rimraf with an lstat before the unlink.
 */
import { closeSync, openSync, readSync, unlinkSync } from 'node:fs';

/** One page holds every /proc and /sys file read on a summon (a stat line, a sysfs attribute, a record). */
const CHUNK = 4096;
const chunk = Buffer.allocUnsafe(CHUNK);

/**
 * What readFileSync(path, encoding) returns, in open, read until end of file, close: no stat, and no
 * allocation for a file that fits one page. Read to the end, never up to a short read: /proc's
 * seq_file returns short reads mid-file. Throws what readFileSync would (ENOENT, ...).
 */
export function readSmallFile(path: string, encoding: BufferEncoding): string {
  const fd = openSync(path, 'r');
  try {
    let parts: Buffer[] | undefined;
    let held = 0;
    for (;;) {
      const n = readSync(fd, chunk, held, CHUNK - held, null);
      if (n === 0) break;
      held += n;
      if (held === CHUNK) {
        (parts ??= []).push(Buffer.from(chunk));
        held = 0;
      }
    }
    if (!parts) return chunk.toString(encoding, 0, held);
    parts.push(Buffer.from(chunk.subarray(0, held)));
    return Buffer.concat(parts).toString(encoding);
  } finally {
    closeSync(fd);
  }
}

/** Removes a file if it is there (rmSync(path, { force: true }) for one file, in one syscall). */
export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
