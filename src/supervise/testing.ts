/** A hand-driven ExitWatcher for unit tests: `exit(pid)` plays the kernel's pidfd wake-up. */
import type { ExitWatcher } from './exit-watch.js';

export interface ManualExitWatcher {
  watcher: ExitWatcher;
  /** Pids watched right now. */
  watched(): number[];
  /** The process `pid` died: run its watcher's callback (once); a later watch of it fires at once, as a pidfd's would. */
  exit(pid: number): void;
}

export function manualExitWatcher(): ManualExitWatcher {
  const watchers = new Map<number, () => void>();
  const dead = new Set<number>();
  return {
    watcher: {
      mechanism: 'poll',
      watch(target, onExit) {
        if (dead.has(target.pid)) {
          let closed = false;
          setImmediate(() => closed || onExit());
          return () => void (closed = true);
        }
        watchers.set(target.pid, onExit);
        return () => {
          if (watchers.get(target.pid) === onExit) watchers.delete(target.pid);
        };
      },
    },
    watched: () => [...watchers.keys()],
    exit(pid) {
      dead.add(pid);
      const onExit = watchers.get(pid);
      watchers.delete(pid);
      onExit?.();
    },
  };
}
