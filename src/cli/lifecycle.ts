/**
 * How the daemon process ends. Every way out — SIGINT/SIGTERM, an uncaught exception or unhandled
 * rejection in any component, a fault during start-up — runs the same orderly shutdown: the
 * daemon's stop() (or, mid-start, start-up's own undo) removes the services, namespaces, links and
 * bridge it made, the log is flushed, and the process exits. The shutdown is bounded, so a second
 * fault or a stop that hangs cannot keep the process alive; whatever it could not remove then is
 * replaced by the next start.
 */
import { errorCode, errorMessage } from '../errors.js';
import type { Daemon } from '../daemon.js';
import type { LogOutput, Logger } from '../observe/log.js';

/** A faulted daemon exits with this status (EX_SOFTWARE); a failed clean shutdown with 1. */
export const FAULT_EXIT_CODE = 70;
const SHUTDOWN_DEADLINE_MS = 30_000;

export class ProcessLifecycle {
  /** Aborted when the process must end while start-up is still under way. */
  readonly startup = new AbortController();
  private daemon: Daemon | undefined;
  private ending: string | undefined;
  private exitCode = 0;
  private exiting = false;

  constructor(
    private readonly logger: Logger,
    private readonly output: LogOutput,
  ) {}

  /** Handlers first, before start-up begins: a signal or fault at any moment ends in cleanup. */
  install(): void {
    process.on('SIGINT', () => this.signal('SIGINT'));
    process.on('SIGTERM', () => this.signal('SIGTERM'));
    process.on('SIGHUP', () => this.reload());
    // Also keeps SIGUSR1 from starting Node's inspector, which a root daemon must never do.
    process.on('SIGUSR1', () => this.reopenLog());
    process.on('uncaughtException', (err, origin) => this.fault(err, origin));
    process.on('unhandledRejection', (reason) => this.fault(reason, 'unhandledRejection'));
  }

  /** Start-up finished: from now on ending stops this daemon. */
  started(daemon: Daemon): void {
    this.daemon = daemon;
    if (this.ending !== undefined) this.stopDaemon();
  }

  /** Start-up failed; it has undone what it made. */
  startFailed(err: unknown): void {
    if (this.ending !== undefined) {
      // We aborted it (or it died of the fault that is ending us): the cause is already logged.
      this.exit(this.exitCode);
      return;
    }
    const code = errorCode(err);
    const hint = code === 'NETWORK_SETUP' && process.getuid?.() !== 0 ? ' (bridges and network namespaces need root)' : '';
    this.logger.error('startup failed', { code: code ?? 'UNKNOWN', cause: errorMessage(err) + hint });
    this.exit(1);
  }

  private signal(signal: string): void {
    if (this.ending !== undefined) {
      this.logger.warn('second signal: exiting without cleanup', { signal });
      this.exit(1, { flush: false });
      return;
    }
    this.logger.info('shutting down', { signal });
    this.end(signal, 0);
  }

  private fault(err: unknown, origin: string): void {
    // Must not throw itself: an exception from an uncaughtException handler kills the process at once.
    try {
      const error = err instanceof Error ? err : new Error(String(err));
      this.logger.error(this.ending === undefined ? 'fault: shutting down' : 'fault during shutdown', {
        origin,
        error: error.message,
        code: errorCode(err),
        stack: error.stack,
      });
      this.end(`fault (${origin})`, FAULT_EXIT_CODE);
    } catch {
      this.exit(FAULT_EXIT_CODE, { flush: false });
    }
  }

  private end(reason: string, exitCode: number): void {
    this.exitCode = Math.max(this.exitCode, exitCode);
    if (this.ending !== undefined) return;
    this.ending = reason;
    setTimeout(() => {
      this.logger.error('shutdown did not finish: exiting; the next start replaces what is left', { reason, deadline_ms: SHUTDOWN_DEADLINE_MS });
      this.exit(FAULT_EXIT_CODE);
    }, SHUTDOWN_DEADLINE_MS);
    if (this.daemon) this.stopDaemon();
    else this.startup.abort(new Error(`start-up aborted: ${reason}`));
  }

  private stopDaemon(): void {
    this.daemon!.stop().then(
      () => this.exit(this.exitCode),
      (err: unknown) => {
        this.logger.error('shutdown failed', { cause: errorMessage(err) });
        this.exit(Math.max(this.exitCode, 1));
      },
    );
  }

  /** SIGHUP: re-read the configuration (the daemon logs the outcome; a refused file changes nothing). */
  private reload(): void {
    if (!this.daemon || this.ending !== undefined) {
      this.logger.warn('SIGHUP ignored: the daemon is starting or stopping; send it again once it runs');
      return;
    }
    this.logger.info('SIGHUP: reloading the configuration');
    // reload() reports its own failures; a throw here would be a fault, not a refused file.
    void this.daemon.reload();
  }

  private reopenLog(): void {
    try {
      this.output.reopen();
      this.logger.info('SIGUSR1: log reopened');
    } catch (err) {
      this.logger.error('SIGUSR1: cannot reopen the log file; still writing to the old one', { cause: errorMessage(err) });
    }
  }

  /** Flush the log (bounded) and exit; the first call wins, unless a later one skips the flush. */
  exit(code: number, opts: { flush?: boolean } = {}): void {
    if (opts.flush === false) process.exit(code);
    if (this.exiting) return;
    this.exiting = true;
    void this.output.close(2000).finally(() => process.exit(code));
  }
}
