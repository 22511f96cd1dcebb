/** Finding a program the way execvp would, without running anything. */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * The file `cmd` names: itself when it has a slash (relative to `cwd` if given), else the first
 * executable regular file of that name in `pathEnv`'s directories; undefined when there is none.
 */
export function findExecutable(cmd: string, pathEnv: string, cwd?: string): string | undefined {
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (cmd.includes('/')) return executable(cmd.startsWith('/') || !cwd ? cmd : join(cwd, cmd)) ? cmd : undefined;
  for (const dir of pathEnv.split(delimiter)) {
    if (dir && executable(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}
