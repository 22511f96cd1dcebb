/**
 * A tiny QMP client: one unix socket, newline-delimited JSON, the capabilities handshake, and
 * commands matched to their replies by `id`. Events are counted and the last few kept (bounded),
 * because nothing here needs more than "did SHUTDOWN happen".
 */
import { createConnection, type Socket } from 'node:net';
import { JitsuError } from '../../errors.js';
import type { JsonValue } from '../backend.js';

/** A QMP message larger than this is a protocol error, not something to buffer. */
export const QMP_MAX_LINE = 1024 * 1024;
const MAX_EVENTS = 32;

export type QmpMessage = { [key: string]: JsonValue };

/** Encode one command; `id` lets replies be matched even if QEMU interleaves events. */
export function encodeQmpCommand(execute: string, args: { [key: string]: JsonValue } | undefined, id: number): string {
  const msg: QmpMessage = { execute, id };
  if (args !== undefined) msg['arguments'] = args;
  return JSON.stringify(msg) + '\r\n';
}

/** Splits a byte stream into QMP messages; holds at most one partial line of QMP_MAX_LINE bytes. */
export class QmpLineParser {
  private partial = '';

  push(chunk: string): QmpMessage[] {
    const out: QmpMessage[] = [];
    let text = this.partial + chunk;
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      const line = text.slice(0, nl).trim();
      text = text.slice(nl + 1);
      if (line.length > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          throw new JitsuError('BOOT_FAILED', `QMP sent a line that is not JSON: ${line.slice(0, 120)}`);
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          throw new JitsuError('BOOT_FAILED', `QMP sent a non-object message: ${line.slice(0, 120)}`);
        }
        out.push(parsed as QmpMessage);
      }
      nl = text.indexOf('\n');
    }
    if (text.length > QMP_MAX_LINE) throw new JitsuError('BOOT_FAILED', `QMP message longer than ${QMP_MAX_LINE} bytes`);
    this.partial = text;
    return out;
  }
}

interface Pending {
  resolve: (value: JsonValue) => void;
  reject: (err: Error) => void;
  command: string;
}

export class QmpClient {
  private readonly parser = new QmpLineParser();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private greeting: ((msg: QmpMessage) => void) | undefined;
  private closedError: Error | undefined;
  /** The last events QEMU sent (name only), oldest first. */
  readonly events: string[] = [];

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('QMP connection closed')));
  }

  /**
   * Connect, read the greeting and negotiate capabilities. Rejects with BOOT_FAILED when the socket
   * does not exist or QEMU does not greet within `timeoutMs`.
   */
  static connect(path: string, timeoutMs = 2000): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      const client = new QmpClient(socket, path);
      const timer = setTimeout(() => failEarly(new Error(`no greeting within ${timeoutMs} ms`)), timeoutMs);
      let settled = false;
      const failEarly = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(new JitsuError('BOOT_FAILED', `cannot reach QMP at ${path}: ${err.message}`, { qmp: path }, { cause: err }));
      };
      const closedEarly = (): void => failEarly(new Error('connection closed before the handshake'));
      socket.once('error', failEarly);
      socket.once('close', closedEarly);
      client.greeting = () => {
        client.execute('qmp_capabilities').then(
          () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            socket.off('error', failEarly);
            socket.off('close', closedEarly);
            resolve(client);
          },
          (err: Error) => failEarly(err),
        );
      };
    });
  }

  execute(command: string, args?: { [key: string]: JsonValue }): Promise<JsonValue> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, command });
      this.socket.write(encodeQmpCommand(command, args, id));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    let messages: QmpMessage[];
    try {
      messages = this.parser.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
      return;
    }
    for (const msg of messages) {
      if ('QMP' in msg) {
        const g = this.greeting;
        this.greeting = undefined;
        g?.(msg);
      } else if ('event' in msg) {
        if (this.events.length >= MAX_EVENTS) this.events.shift();
        this.events.push(String(msg['event']));
      } else if (typeof msg['id'] === 'number') {
        const p = this.pending.get(msg['id']);
        if (!p) continue;
        this.pending.delete(msg['id']);
        if ('error' in msg) {
          const e = msg['error'] as { class?: JsonValue; desc?: JsonValue } | null;
          p.reject(new Error(`QMP ${p.command} failed: ${String(e?.desc ?? 'unknown error')} (${String(e?.class ?? '?')})`));
        } else {
          p.resolve(msg['return'] ?? null);
        }
      }
    }
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** Connect, run one command, disconnect (QMP serves one client at a time: never hold it). */
export async function qmpOnce(path: string, command: string, args?: { [key: string]: JsonValue }, timeoutMs = 2000): Promise<JsonValue> {
  const client = await QmpClient.connect(path, timeoutMs);
  try {
    return await withTimeout(client.execute(command, args), timeoutMs, `QMP ${command} at ${path}`);
  } finally {
    client.close();
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
