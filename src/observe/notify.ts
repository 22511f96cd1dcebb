/**
 * The systemd notification protocol (sd_notify(3)), spoken natively: `KEY=VALUE` lines in one
 * datagram to the AF_UNIX socket named by NOTIFY_SOCKET. The unit (packaging/systemd/jitsu.service)
 * is `Type=notify` with `NotifyAccess=main`, so systemd accepts only datagrams sent by the daemon's
 * own pid: a helper such as systemd-notify would be ignored, hence the addon's unixDgramSend.
 *
 * What the daemon says: READY=1 once DNS answers; STATUS= a one-line service summary, sent when it
 * changes (looked at once a second, so a burst of changes is one message); RELOADING=1 with
 * MONOTONIC_USEC= before a reload and READY=1 after it; STOPPING=1 when the shutdown begins; and
 * WATCHDOG=1 every WATCHDOG_USEC/2 while the event loop turns. Without NOTIFY_SOCKET it is all a no-op.
 */
import { errorMessage } from '../errors.js';
import { loadNative } from '../native/index.js';
import type { Logger } from './log.js';

export interface NotifyEnv {
  NOTIFY_SOCKET?: string | undefined;
  WATCHDOG_USEC?: string | undefined;
  WATCHDOG_PID?: string | undefined;
}

/** The variables the protocol reads; unset once read, so the services we start do not inherit them. */
export const NOTIFY_ENV_KEYS = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/** One notification: `KEY=VALUE` lines. A value is one line (systemd reads a newline as the next key). */
export function notifyMessage(fields: Readonly<Record<string, string | number>>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key}=${String(value).replace(/[\r\n]+/g, ' ')}\n`)
    .join('');
}

/**
 * How often to ping the watchdog: half of WATCHDOG_USEC (as sd_watchdog_enabled(3) advises), or
 * undefined when there is no watchdog or it is meant for another process (WATCHDOG_PID).
 */
export function watchdogIntervalMs(env: NotifyEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

/** `systemctl status` shows this line: "3 services: 1 running, 1 booting, 0 failed". */
export function serviceSummary(services: readonly { state: string }[]): string {
  const count = (state: string): number => services.filter((s) => s.state === state).length;
  return `${services.length} service${services.length === 1 ? '' : 's'}: ${count('ready')} running, ${count('booting')} booting, ${count('failed')} failed`;
}

/** CLOCK_MONOTONIC in µs (Node's hrtime is that clock on Linux): systemd orders a reload by it. */
function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}

export interface Notifier {
  /** Start-up is complete (or a reload is done): DNS answers. */
  ready(): void;
  /** A reload begins; ready() ends it. */
  reloading(): void;
  /** The shutdown begins. */
  stopping(): void;
  /** Send `STATUS=` whenever `summary()` changes, looking once per `intervalMs` (and with every READY=1). */
  trackStatus(summary: () => string, intervalMs?: number): void;
  /** Stops the watchdog pings and the status tracking. */
  close(): void;
}

/** Without NOTIFY_SOCKET: nothing to tell. */
export const noNotifier: Notifier = {
  ready: () => undefined,
  reloading: () => undefined,
  stopping: () => undefined,
  trackStatus: () => undefined,
  close: () => undefined,
};

export interface NotifierOptions {
  env: NotifyEnv;
  logger: Logger;
  pid?: number;
  /** Sends one datagram; default: the addon's unixDgramSend. */
  send?: (socket: string, data: Buffer) => void;
}

class SocketNotifier implements Notifier {
  private watchdog: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private summary: (() => string) | undefined;
  private lastStatus: string | undefined;
  private failures = 0;

  constructor(
    private readonly socket: string,
    private readonly sendDatagram: (socket: string, data: Buffer) => void,
    private readonly logger: Logger,
    watchdogMs: number | undefined,
  ) {
    if (watchdogMs !== undefined) {
      // unref: the pings must never be what keeps a finished daemon alive.
      this.watchdog = setInterval(() => this.send({ WATCHDOG: 1 }), watchdogMs).unref();
      this.send({ WATCHDOG: 1 });
    }
  }

  ready(): void {
    // The status line said "reloading": say what is true now, in the same datagram.
    this.lastStatus = this.summary?.();
    this.send({ READY: 1, ...(this.lastStatus !== undefined ? { STATUS: this.lastStatus } : {}) });
  }

  reloading(): void {
    this.lastStatus = undefined;
    this.send({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading the configuration' });
  }

  stopping(): void {
    this.stopTracking();
    this.send({ STOPPING: 1, STATUS: 'stopping: stopping services, removing the network' });
  }

  trackStatus(summary: () => string, intervalMs = 1000): void {
    this.stopTracking();
    this.summary = summary;
    this.statusTimer = setInterval(() => {
      const text = summary();
      if (text === this.lastStatus) return;
      this.lastStatus = text;
      this.send({ STATUS: text });
    }, intervalMs).unref();
  }

  close(): void {
    this.stopTracking();
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  private stopTracking(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = undefined;
  }

  private send(fields: Record<string, string | number>): void {
    try {
      this.sendDatagram(this.socket, Buffer.from(notifyMessage(fields)));
    } catch (err) {
      // The first failure is worth a warning (systemd will not see readiness); repeats are noise.
      this.failures++;
      const facts = { socket: this.socket, message: Object.keys(fields).join(','), cause: errorMessage(err), failures: this.failures };
      if (this.failures === 1) this.logger.warn('sd_notify failed', facts);
      else this.logger.debug('sd_notify failed', facts);
    }
  }
}

/** A notifier for NOTIFY_SOCKET, or noNotifier when it is unset. */
export function createNotifier(opts: NotifierOptions): Notifier {
  const socket = opts.env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return noNotifier;
  let send = opts.send;
  if (send === undefined) {
    try {
      const addon = loadNative();
      send = (path, data) => void addon.unixDgramSend(path, data);
    } catch (err) {
      opts.logger.warn('NOTIFY_SOCKET is set but the native addon is missing: systemd will not see readiness', { cause: errorMessage(err) });
      return noNotifier;
    }
  }
  return new SocketNotifier(socket, send, opts.logger, watchdogIntervalMs(opts.env, opts.pid ?? process.pid));
}

/** The CLI's notifier: reads the protocol's variables and unsets them (services must not inherit them). */
export function notifierFromProcessEnv(logger: Logger): Notifier {
  const env: NotifyEnv = {};
  for (const key of NOTIFY_ENV_KEYS) {
    env[key] = process.env[key];
    delete process.env[key];
  }
  return createNotifier({ env, logger });
}
