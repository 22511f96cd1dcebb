import { chmod, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { JitsuError, errorCode, errorMessage } from '../errors.js';
import type { Logger } from '../observe/log.js';
import { MAX_REQUEST_BYTES, controlSocketPath, type ControlRequest, type ControlResponse, type ControlResults } from './protocol.js';

/** What the daemon does for each command. */
export type ControlHandlers = { [C in keyof ControlResults]: (request: Extract<ControlRequest, { command: C }>) => Promise<ControlResults[C]> | ControlResults[C] };

export interface ControlServer {
  readonly path: string;
  /** Commands are answered from now on (before this: "still starting"). */
  serve(handlers: ControlHandlers): void;
  close(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 10_000;

/** Does a daemon answer on `path`? A socket file nobody listens on (ECONNREFUSED) is a dead daemon's. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (alive: boolean): void => {
      socket.destroy();
      resolve(alive);
    };
    socket.setTimeout(1000, () => done(true)); // accepted but silent: someone is there
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function parseRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new JitsuError('CONTROL_FAILED', 'request is not JSON');
  }
  const request = value as Partial<{ command: unknown; service: unknown }>;
  if (request.command === 'status' || request.command === 'reload') return { command: request.command };
  if ((request.command === 'start' || request.command === 'stop') && typeof request.service === 'string') return { command: request.command, service: request.service };
  throw new JitsuError('CONTROL_FAILED', 'unknown request: commands are status, reload, start SERVICE, stop SERVICE');
}

/**
 * Binds `STATE_DIR/control.sock`. A socket file left by a crashed daemon is replaced; one a running
 * daemon answers on means the state dir is in use, and this daemon must not start next to it.
 */
export async function listenControl(stateDir: string, logger: Logger): Promise<ControlServer> {
  const path = controlSocketPath(stateDir);
  let handlers: ControlHandlers | undefined;

  const dispatch = async (request: ControlRequest): Promise<ControlResults[keyof ControlResults]> => {
    if (!handlers) throw new JitsuError('CONTROL_FAILED', 'the daemon is still starting: try again in a moment');
    switch (request.command) {
      case 'status':
        return handlers.status(request);
      case 'reload':
        return handlers.reload(request);
      case 'start':
        return handlers.start(request);
      case 'stop':
        return handlers.stop(request);
    }
  };

  const onConnection = (socket: Socket): void => {
    let buffered = '';
    let answered = false;
    socket.setEncoding('utf8');
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => {
      if (!answered) socket.destroy();
    });
    socket.on('error', () => undefined); // a client that went away; nothing to tell it
    const reply = (response: ControlResponse): void => {
      answered = true;
      if (!socket.destroyed) socket.end(JSON.stringify(response) + '\n');
    };
    socket.on('data', (chunk: string) => {
      if (answered) return;
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline === -1) {
        if (buffered.length > MAX_REQUEST_BYTES) reply({ ok: false, error: 'request too long' });
        return;
      }
      answered = true;
      socket.setTimeout(0); // a start waits for the boot, however long the boot timeout is
      let request: ControlRequest;
      try {
        request = parseRequest(buffered.slice(0, newline));
      } catch (err) {
        reply({ ok: false, error: errorMessage(err), code: errorCode(err) ?? 'CONTROL_FAILED' });
        return;
      }
      logger.debug('control command', { command: request.command, service: 'service' in request ? request.service : undefined });
      dispatch(request).then(
        (result) => reply({ ok: true, result } as ControlResponse),
        (err: unknown) => reply({ ok: false, error: errorMessage(err), code: errorCode(err) ?? 'UNKNOWN' }),
      );
    });
  };

  const server = createServer(onConnection);
  try {
    await listen(server, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw new JitsuError('CONTROL_FAILED', `cannot create the control socket ${path}: ${errorMessage(err)}`, {}, { cause: err });
    if (await answers(path)) {
      throw new JitsuError('STATE_IN_USE', `state dir ${stateDir} is in use by a running jitsu daemon (it answers on ${path}): stop it, or give this one its own --state`, { path });
    }
    logger.info('replacing the stale control socket of a daemon that is gone', { path });
    await unlink(path);
    await listen(server, path);
  }
  await chmod(path, 0o600);
  return {
    path,
    serve: (next) => void (handlers = next),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
