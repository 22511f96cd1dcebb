/**
 * Seeing a service's main process die the moment it does. A pidfd (native PidWatch) turns
 * readable when the process exits; the start time recorded in the handle is checked after the fd is
 * open, so a pid the kernel already reused can never be mistaken for the service (the fd pins the
 * process it was opened on). Without the addon, /proc is polled instead, still well inside the
 * 100 ms the lifecycle promises.
 */
import { isAlive } from '../backends/common/proc.js';
import type { BackendHandle } from '../backends/backend.js';
import { errorMessage } from '../errors.js';
import { loadNative, type NativeAddon } from '../native/index.js';
import type { Logger } from '../observe/log.js';

/** The process whose exit ends a service: pid plus start time (clock ticks since boot, /proc field 22). */
export interface WatchedProcess {
  pid: number;
  startTime: number;
}

/** Stops watching; idempotent. */
export type Unwatch = () => void;

export interface ExitWatcher {
  /** `onExit` runs once, asynchronously, when the process is gone (at once if it already is). */
  watch(target: WatchedProcess, onExit: () => void): Unwatch;
  readonly mechanism: 'pidfd' | 'poll';
}

/** The main process a `pid`-watched backend recorded in its handle, if the handle names one. */
export function watchedProcess(handle: BackendHandle): WatchedProcess | undefined {
  const startTime = handle.data['startTime'];
  if (typeof handle.pid !== 'number' || handle.pid <= 0 || typeof startTime !== 'number' || startTime <= 0) return undefined;
  return { pid: handle.pid, startTime };
}

const POLL_FALLBACK_MS = 50;

/** `native`: the addon, or null to poll /proc (no addon; tests of the fallback). */
export function createExitWatcher(logger: Logger, native: NativeAddon | null = tryNative(logger)): ExitWatcher {
  if (native) return pidfdWatcher(native, logger);
  return pollWatcher(POLL_FALLBACK_MS);
}

function tryNative(logger: Logger): NativeAddon | null {
  try {
    return loadNative();
  } catch (err) {
    logger.warn('pidfd watch unavailable: polling /proc for service exits', { interval_ms: POLL_FALLBACK_MS, cause: errorMessage(err) });
    return null;
  }
}

function once(fn: () => void): () => void {
  let fired = false;
  return () => {
    if (fired) return;
    fired = true;
    fn();
  };
}

function pidfdWatcher(native: NativeAddon, logger: Logger): ExitWatcher {
  const fallback = pollWatcher(POLL_FALLBACK_MS);
  return {
    mechanism: 'pidfd',
    watch(target, onExit) {
      let closed = false;
      const fire = once(() => {
        if (!closed) onExit();
      });
      let pidWatch: { close(): void } | undefined;
      try {
        pidWatch = new native.PidWatch(target.pid, fire);
      } catch (err) {
        // ESRCH: it is already gone.
        if (/No such process/.test(errorMessage(err))) {
          setImmediate(fire);
          return () => void (closed = true);
        }
        logger.warn('pidfd_open failed: polling /proc for this service', { pid: target.pid, cause: errorMessage(err) });
        return fallback.watch(target, onExit);
      }
      // The fd now pins the process it was opened on: if that is not ours any more, ours is gone.
      if (!isAlive(target.pid, target.startTime)) {
        pidWatch.close();
        setImmediate(fire);
      }
      return () => {
        closed = true;
        pidWatch?.close();
      };
    },
  };
}

function pollWatcher(intervalMs: number): ExitWatcher {
  return {
    mechanism: 'poll',
    watch(target, onExit) {
      const timer = setInterval(() => {
        if (isAlive(target.pid, target.startTime)) return;
        clearInterval(timer);
        onExit();
      }, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
