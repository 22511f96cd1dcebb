/**
 * The built-in tiny HTTP service for the demo and tests:
 *   node dist/src/demo/http.js [--port N] [--host ADDR] [--message TEXT] [--delay-ms N]
 * Answers every path with `HTTP/1.1 200` and a one-line body naming the service. With socket
 * activation (LISTEN_PID = our pid) it serves the inherited sockets (fd 3..) and binds nothing;
 * else it binds --port (default 8080). --delay-ms sleeps before serving, to simulate a slow boot.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface DemoArgs {
  port: number;
  host: string;
  message: string;
  delayMs: number;
}

function usage(problem: string): never {
  process.stderr.write(`demo-http: ${problem}\nusage: http.js [--port N] [--host ADDR] [--message TEXT] [--delay-ms N]\n`);
  process.exit(2);
}

export function parseDemoArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): DemoArgs {
  const service = env['JITSU_SERVICE'] ?? hostname();
  const args: DemoArgs = { port: 8080, host: '0.0.0.0', message: `hello from ${service}`, delayMs: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) usage(`${flag} needs a value`);
    i++;
    const num = (min: number, max: number): number => {
      const n = Number(value);
      if (!/^\d+$/.test(value) || n < min || n > max) usage(`${flag} must be an integer ${min}-${max}, got "${value}"`);
      return n;
    };
    if (flag === '--port') args.port = num(1, 65535);
    else if (flag === '--host') args.host = value;
    else if (flag === '--message') args.message = value;
    else if (flag === '--delay-ms') args.delayMs = num(0, 600_000);
    else usage(`unknown flag ${flag}`);
  }
  return args;
}

/** Sockets passed by the systemd protocol: fds 3..3+LISTEN_FDS-1, only if meant for this pid. */
export function activatedFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] {
  const count = Number(env['LISTEN_FDS']);
  if (env['LISTEN_PID'] !== String(pid) || !Number.isInteger(count) || count < 1) return [];
  return Array.from({ length: count }, (_, i) => 3 + i);
}

async function main(): Promise<void> {
  const args = parseDemoArgs(process.argv.slice(2));
  const body = `${args.message}\n`;
  const handler = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (args.delayMs > 0) await new Promise((r) => setTimeout(r, args.delayMs));
  const fds = activatedFds();
  // The protocol says: do not pass these on to children.
  delete process.env['LISTEN_FDS'];
  delete process.env['LISTEN_PID'];
  delete process.env['LISTEN_FDNAMES'];
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (fds.length > 0) {
    // Node calls listen() again on an inherited socket; keep the deep queue the launcher set up
    // (Node's default of 511 would drop SYNs from a burst of clients during a start).
    for (const fd of fds) createServer(handler).listen({ fd }, 65535); // Node 20 reads a positional backlog only, for fd
    process.stdout.write(`demo-http: serving activated fds ${fds.join(',')}\n`);
  } else {
    createServer(handler).listen({ port: args.port, host: args.host, backlog: 65535 }, () => process.stdout.write(`demo-http: listening on ${args.host}:${args.port}\n`));
  }
}

// Run only as a program, not when a test imports the helpers.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  void main();
}
