import { connect } from 'node:net';
import { JitsuError, type ErrorCode } from '../errors.js';
import { MAX_ANSWER_BYTES, controlSocketPath, type ControlRequest, type ControlResponse, type ControlResults } from './protocol.js';

function unreachable(stateDir: string, path: string, code: string | undefined): JitsuError {
  if (code === 'ENOENT' || code === 'ENOTDIR') return new JitsuError('CONTROL_FAILED', `no jitsu daemon is running with state dir ${stateDir} (no control socket at ${path})`, { path });
  if (code === 'ECONNREFUSED') return new JitsuError('CONTROL_FAILED', `no jitsu daemon is running with state dir ${stateDir} (${path} is stale: the daemon that made it is gone)`, { path });
  if (code === 'EACCES' || code === 'EPERM') return new JitsuError('CONTROL_FAILED', `cannot reach the daemon at ${path}: permission denied (the control socket is root's: run as root)`, { path });
  return new JitsuError('CONTROL_FAILED', `cannot reach the daemon at ${path}: ${code ?? 'unknown error'}`, { path });
}

/**
 * Sends one command to the daemon of `stateDir` and resolves with its result; rejects with the
 * daemon's error (its code kept) or with CONTROL_FAILED when no daemon answers.
 */
export function controlRequest<C extends ControlRequest['command']>(stateDir: string, request: Extract<ControlRequest, { command: C }>, timeoutMs = 120_000): Promise<ControlResults[C]> {
  const path = controlSocketPath(stateDir);
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let received = '';
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      fn();
    };
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => settle(() => reject(new JitsuError('CONTROL_FAILED', `the daemon at ${path} did not answer within ${timeoutMs / 1000} s`))));
    socket.once('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('error', (err: NodeJS.ErrnoException) => settle(() => reject(unreachable(stateDir, path, err.code))));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length > MAX_ANSWER_BYTES) settle(() => reject(new JitsuError('CONTROL_FAILED', 'answer too long')));
    });
    socket.on('end', () =>
      settle(() => {
        let response: ControlResponse<C>;
        try {
          response = JSON.parse(received) as ControlResponse<C>;
        } catch {
          reject(new JitsuError('CONTROL_FAILED', `the daemon at ${path} sent no answer`));
          return;
        }
        if (response.ok) resolve(response.result);
        else reject(new JitsuError((response.code as ErrorCode | undefined) ?? 'CONTROL_FAILED', response.error));
      }),
    );
  });
}
