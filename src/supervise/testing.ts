/** A hand-driven ExitWatcher for unit tests: `exit(pid)` plays the kernel's pidfd wake-up. */
import type { ExitWatcher } from './exit-watch.js';

export interface ManualExitWatcher {
  watcher: ExitWatcher;
  /** Pids watched right now. */
  watched(): number[];
  /** The process `pid` died: run its watcher's callback (once). */
  exit(pid: number): void;
}

export function manualExitWatcher(): ManualExitWatcher {
  const watchers = new Map<number, () => void>();
  return {
    watcher: {
      mechanism: 'poll',
      watch(target, onExit) {
        watchers.set(target.pid, onExit);
        return () => {
          if (watchers.get(target.pid) === onExit) watchers.delete(target.pid);
        };
      },
    },
    watched: () => [...watchers.keys()],
    exit(pid) {
      const onExit = watchers.get(pid);
      watchers.delete(pid);
      onExit?.();
    },
  };
}
