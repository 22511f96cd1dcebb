/** Service logs as the launcher writes them (native/activate.c: capped, rotated once to `<log>.1`). */
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';

/** Per-service log cap on disk (the launcher rotates at half, keeping one old file). */
export const LOG_MAX_BYTES = 1 << 20;

function tailBytes(path: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function lastLines(text: string, lines: number): string[] {
  return text.split('\n').filter((l) => l.length > 0).slice(-lines);
}

/** The last `lines` lines of the service log (looking into the rotated file when the current one is short). */
export function logTail(path: string, lines = 10, bytes = 4096): string[] {
  let text = tailBytes(path, bytes);
  if (text.split('\n').length <= lines) text = tailBytes(`${path}.1`, bytes) + text;
  return lastLines(text, lines);
}

/**
 * The last lines written since `offset` (the log's size when this boot started), so a failure never
 * quotes an earlier boot (a log several boots share, like a container's); the plain tail when the
 * log was rotated meanwhile.
 */
export function logSince(path: string, offset: number, lines = 5, bytes = 4096): string[] {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return [];
  }
  if (size < offset) return logTail(path, lines);
  if (size === offset) return [];
  return lastLines(tailBytes(path, Math.min(size - offset, bytes)), lines);
}

/**
 * A new boot gets a fresh log: the previous boot's moves to `<log>.prev`, so a failed boot's
 * tail never shows an older run's lines.
 */
export function startLog(path: string): void {
  rmSync(`${path}.1`, { force: true });
  try {
    renameSync(path, `${path}.prev`);
  } catch {
    // first boot: no log yet
  }
}
