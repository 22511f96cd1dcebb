import { mkdir, stat } from 'node:fs/promises';
import { ConfigError } from '../config/errors.js';

/**
 * Creates `dir` (and missing parents) 0700, and refuses one that others may write: whoever can
 * write the state dir decides which processes the daemon adopts, signals and stops (root's), so
 * a group- or world-writable one is a privilege escalation, not a convenience. `flag` names the
 * option the directory came from, for the one-line error the CLI exits 2 with.
 */
export async function ensurePrivateDir(dir: string, flag: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if (!st.isDirectory()) throw new ConfigError(flag, `${dir} is not a directory: give a directory (it is created 0700 if missing)`);
  const writable = st.mode & 0o022;
  if (writable !== 0) {
    const who = writable === 0o022 ? 'group and others' : writable === 0o020 ? 'its group' : 'others';
    throw new ConfigError(
      flag,
      `${dir} is writable by ${who} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}), so they could make the daemon adopt and stop processes: chmod go-w ${dir}, or give a directory only its owner can write`,
    );
  }
}
