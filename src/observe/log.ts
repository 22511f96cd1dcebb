/**
 * Structured logs: one line per event on stderr (or an appended file), `level=... msg=... key=value`
 * (logfmt), so they read well in a terminal and parse with standard tools, or one JSON object per
 * line (`--log-format json`) for log shippers. Under systemd's journal (see journalStyle) a line
 * carries no timestamp (journald adds its own) and starts with its syslog priority `<N>`, so
 * journald keeps the level. Level filtering happens before formatting; the level can change while
 * running (a reload). Writing a log line can never take the daemon down: see LogOutput.
 */
import { createWriteStream, openSync } from 'node:fs';
import type { Writable } from 'node:stream';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export type LogFormat = 'logfmt' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['logfmt', 'json'];

/** How a line is written: its format, and whether it carries `ts=` and a `<N>` priority prefix. */
export interface LogStyle {
  format: LogFormat;
  timestamps: boolean;
  priorityPrefix: boolean;
}

export const DEFAULT_LOG_STYLE: LogStyle = { format: 'logfmt', timestamps: true, priorityPrefix: false };

/** syslog(3) priorities, the prefix journald reads off each line of a service's stream. */
const SYSLOG_PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3, silent: 7 };

/**
 * The style for a log written to stderr: journald's when stderr is the journal stream systemd
 * gave us (JOURNAL_STREAM is `DEV:INODE` of it: sd_journal_stream_fd(3) says to compare, since a
 * child may inherit the variable with another stderr), else the plain one.
 */
export function journalStyle(format: LogFormat, journalStream: string | undefined, stderr: { dev: number; ino: number } | undefined): LogStyle {
  const underJournal = journalStream !== undefined && stderr !== undefined && journalStream === `${stderr.dev}:${stderr.ino}`;
  return { format, timestamps: !underJournal, priorityPrefix: underJournal };
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  enabled(level: LogLevel): boolean;
}

function quote(value: string): string {
  return /^[\w.:/@+-]+$/.test(value) ? value : JSON.stringify(value);
}

export function formatLine(level: LogLevel, msg: string, fields: LogFields, style: LogStyle = DEFAULT_LOG_STYLE): string {
  const prefix = style.priorityPrefix ? `<${SYSLOG_PRIORITY[level]}>` : '';
  if (style.format === 'json') {
    const record: Record<string, unknown> = style.timestamps ? { ts: new Date().toISOString(), level, msg } : { level, msg };
    for (const [key, value] of Object.entries(fields)) if (value !== undefined) record[key] = value;
    return prefix + JSON.stringify(record);
  }
  let line = `${prefix}${style.timestamps ? `ts=${new Date().toISOString()} ` : ''}level=${level} msg=${quote(msg)}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    line += ` ${key}=${quote(String(value))}`;
  }
  return line;
}

/** The logger the CLI makes: its level (shared by every child) can change while running. */
export interface RootLogger extends Logger {
  setLevel(level: LogLevel): void;
}

export function createLogger(
  level: LogLevel = 'info',
  sink: (line: string) => void = (line) => stderrOutput().write(line),
  base: LogFields = {},
  style: LogStyle = DEFAULT_LOG_STYLE,
): RootLogger {
  const shared = { threshold: rank[level] };
  const make = (fieldsOfChild: LogFields): Logger => {
    const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
      if (rank[lvl] < shared.threshold) return;
      sink(formatLine(lvl, msg, fields ? { ...fieldsOfChild, ...fields } : fieldsOfChild, style));
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (fields) => make({ ...fieldsOfChild, ...fields }),
      enabled: (lvl) => rank[lvl] >= shared.threshold,
    };
  };
  return { ...make(base), setLevel: (next) => void (shared.threshold = rank[next]) };
}

/** A logger that drops everything; for tests and library use. */
export const silentLogger: Logger = createLogger('silent');

/**
 * Where log lines go. A log consumer that exits (`jitsu ... | head -1`), a terminal that goes away
 * (EIO), a closed descriptor (EBADF) or a full disk must not kill the daemon or stall it, and a
 * consumer that stops reading must not make it buffer without bound. So: writes never throw and
 * never block; a destination that failed is given up (its lines are dropped and counted); one
 * backed up beyond `maxPendingBytes` drops lines until it drains; and the next line that gets out
 * is preceded by a note of how many were dropped.
 */
export interface LogOutput {
  /** Write one line (the newline is added). */
  write(line: string): void;
  /** Lines not written so far. */
  readonly dropped: number;
  /** Told how many lines were just dropped (the CLI feeds `jitsu_log_lines_dropped_total`). */
  onDrop: ((lines: number) => void) | undefined;
  /**
   * Log rotation: append to a fresh file at the configured path (logrotate has moved the old one).
   * Throws the open error and keeps the current file when the path cannot be opened. No-op on stderr.
   */
  reopen(): void;
  /** Flush what is queued, waiting at most `timeoutMs`, and close a file (stderr stays open). */
  close(timeoutMs?: number): Promise<void>;
}

export interface LogOutputOptions {
  /** Bytes a slow destination may have queued before lines are dropped. */
  maxPendingBytes?: number;
  /** Told once each time the destination fails (a file's failure can still be noted on stderr). */
  onLost?: (err: Error) => void;
}

export const MAX_PENDING_LOG_BYTES = 1024 * 1024;

class StreamLogOutput implements LogOutput {
  dropped = 0;
  onDrop: ((lines: number) => void) | undefined;
  /** Dropped since the last line that got out: reported in front of the next one. */
  private unreported = 0;
  private lost = false;

  constructor(
    private stream: Writable,
    private readonly maxPendingBytes: number,
    private readonly open: (() => Writable) | undefined,
    private readonly onLost: ((err: Error) => void) | undefined,
  ) {
    this.watch(stream);
  }

  private watch(stream: Writable): void {
    // Without a listener, an EPIPE/EIO/EBADF 'error' event is an uncaught exception.
    stream.on('error', (err: Error) => {
      if (stream !== this.stream || this.lost) return;
      this.lost = true;
      this.onLost?.(err);
    });
  }

  write(line: string): void {
    const stream = this.stream;
    if (this.lost || stream.destroyed || stream.writableLength > this.maxPendingBytes) {
      this.dropped++;
      this.unreported++;
      this.onDrop?.(1);
      return;
    }
    if (this.unreported > 0) {
      stream.write(formatLine('warn', 'log lines dropped', { lines: this.unreported, reason: 'the log destination was backed up or failed' }) + '\n');
      this.unreported = 0;
    }
    stream.write(line + '\n');
  }

  reopen(): void {
    if (!this.open) return;
    const next = this.open();
    const previous = this.stream;
    this.stream = next;
    this.lost = false;
    this.watch(next);
    previous.end();
  }

  close(timeoutMs = 2000): Promise<void> {
    const stream = this.stream;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      if (this.open) stream.end(done);
      else if (this.lost || stream.writableLength === 0) done();
      else stream.once('drain', done).once('error', done);
    });
  }
}

function appendStream(path: string): Writable {
  // Opened synchronously so that a bad path fails now (start-up, SIGUSR1), not in a later event.
  const fd = openSync(path, 'a', 0o640);
  return createWriteStream(path, { fd, autoClose: true });
}

/** Log to a stream someone else owns (stderr, a pipe): never closed here, never reopened. */
export function streamLogOutput(stream: Writable, opts: LogOutputOptions = {}): LogOutput {
  return new StreamLogOutput(stream, opts.maxPendingBytes ?? MAX_PENDING_LOG_BYTES, undefined, opts.onLost);
}

/** Append to `path` (`--log-file`); opened at once, so a bad path throws here, with the fs error's code. */
export function openLogFile(path: string, opts: LogOutputOptions = {}): LogOutput {
  return new StreamLogOutput(appendStream(path), opts.maxPendingBytes ?? MAX_PENDING_LOG_BYTES, () => appendStream(path), opts.onLost);
}

let sharedStderr: LogOutput | undefined;

/** The process's one stderr output; every logger without a sink of its own writes through it. */
export function stderrOutput(): LogOutput {
  return (sharedStderr ??= streamLogOutput(process.stderr));
}
