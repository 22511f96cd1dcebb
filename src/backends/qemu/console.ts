/**
 * The guest's serial console file: capped (QEMU appends; we truncate when it grows past the cap),
 * and its last lines quoted in boot and ready errors.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, truncateSync } from 'node:fs';

export const CONSOLE_MAX_BYTES = 1024 * 1024;
const TAIL_BYTES = 4096;

/** The last `lines` lines of a file (reads at most 4 KiB); empty when it does not exist. */
export function fileTail(path: string, lines = 15): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.allocUnsafe(len);
    const n = readSync(fd, buf, 0, len, size - len);
    const text = buf.subarray(0, n).toString('utf8').replace(/\r/g, '');
    const all = text.split('\n').filter((l) => l.length > 0);
    // The first line may be cut in the middle when the file is longer than the window.
    if (size > len) all.shift();
    return all.slice(-lines);
  } finally {
    closeSync(fd);
  }
}

/** Keep the console file under CONSOLE_MAX_BYTES; QEMU opened it with append=on, so it keeps writing at the new end. */
export function capConsole(path: string, max = CONSOLE_MAX_BYTES): void {
  try {
    if (statSync(path).size > max) truncateSync(path, 0);
  } catch {
    // not there yet
  }
}
