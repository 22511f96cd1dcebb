/**
 * Runs the real CLI (`node dist/src/cli/main.js`) as a child process, the way a user does, and
 * offers the real clients the tests use: dig, curl. Each daemon gets its own bridge, state dir and
 * DNS port, so tests cannot collide, and `stop()` always leaves nothing behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BUILT_DEMO_SERVER } from '../../src/demo/stage.js';
import { DEMO_ENV } from './global-setup.js';
import { promisify } from 'node:util';
import { onTestFailed } from 'vitest';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');
/**
 * The demo HTTP server the tests' services run, staged outside the checkout by the global setup:
 * services run as the unprivileged jitsu-svc with a private /tmp, and the checkout may sit under
 * /tmp or under a directory only root may enter (as in CI's clone).
 */
export const DEMO_HTTP = process.env[DEMO_ENV] ?? BUILT_DEMO_SERVER;

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function haveCommand(cmd: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, cmd)));
}

/** A free TCP+UDP port on loopback (bound then released; the daemon binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly stateDir: string;
  readonly bridge: string;
  readonly metricsPort: number | undefined;
  logs(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM and wait (clean exit); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: simulates a crash, leaving services running. */
  kill(): Promise<void>;
}

export interface DaemonOptions {
  services: string[];
  args?: string[];
  bridge: string;
  stateDir?: string;
  port?: number;
  metrics?: boolean;
}

export async function startDaemon(opts: DaemonOptions): Promise<DaemonProcess> {
  const port = opts.port ?? (await freePort());
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'jitsu-it-'));
  const metricsPort = opts.metrics ? await freePort() : undefined;
  const args = [
    CLI,
    '-b', '127.0.0.1',
    '-l', String(port),
    '--bridge', opts.bridge,
    '--state', stateDir,
    '--log-level', 'debug',
    ...(metricsPort !== undefined ? ['--metrics', `127.0.0.1:${metricsPort}`] : []),
    ...(opts.args ?? []),
    ...opts.services,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // A failed test shows what the daemon said, so a failure in CI can be read without a rerun.
  try {
    onTestFailed(() => console.log(`daemon (port ${port}) output, last 6000 characters:\n${output.slice(-6000)}`));
  } catch {
    // Started from a beforeAll hook: no single test to attach to.
  }

  const waitForLog = (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> =>
    new Promise((resolveMatch, reject) => {
      const check = (): void => {
        const m = output.match(pattern);
        if (m) {
          done();
          resolveMatch(m);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${pattern} in daemon output:\n${output.slice(-4000)}`));
      }, timeoutMs);
      const onExit = (): void => {
        done();
        reject(new Error(`daemon exited while waiting for ${pattern}:\n${output.slice(-4000)}`));
      };
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
        child.off('exit', onExit);
      };
      waiters.add(check);
      child.once('exit', onExit);
      check();
    });

  const daemon: DaemonProcess = {
    child,
    port,
    stateDir,
    bridge: opts.bridge,
    metricsPort,
    logs: () => output,
    waitForLog,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitForLog(/msg="?jitsu ready/);
  } catch (err) {
    await daemon.kill();
    throw err;
  }
  return daemon;
}

export interface DigResult {
  status: string;
  flags: string[];
  answers: string[];
  authority: string[];
  raw: string;
}

/** Real `dig`, parsed: status, header flags, answer and authority records. */
export async function dig(port: number, name: string, type = 'A', extra: string[] = [], server = '127.0.0.1'): Promise<DigResult> {
  const { stdout } = await run('dig', [`@${server}`, '-p', String(port), name, type, '+time=10', '+tries=1', '+nocookie', ...extra], { timeout: 30_000 });
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  const section = (title: string): string[] => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    return m ? m[1]!.split('\n').filter((l) => l.trim() !== '') : [];
  };
  return { status, flags, answers: section('ANSWER'), authority: section('AUTHORITY'), raw: stdout };
}

/** Real `curl`; returns the body. Fails (rejects) on connection errors. */
export async function curl(url: string, extra: string[] = []): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '20', ...extra, url], { timeout: 30_000 });
  return stdout;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Remove leftovers of a test, even after a failure mid-test (a killed daemon leaves its services
 * running by design): processes of services named with the prefix, then netns and links.
 */
export async function cleanupNetwork(prefix: string): Promise<void> {
  for (const pattern of [`--message hello-${prefix}`, `/run/netns/jitsu-${prefix}`]) {
    await run('pkill', ['-KILL', '-f', pattern]).catch(() => undefined);
  }
  const { stdout: ns } = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  for (const line of ns.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(`jitsu-${prefix}`)) await run('ip', ['netns', 'del', name]).catch(() => undefined);
  }
  const { stdout: links } = await run('ip', ['-o', 'link', 'show']).catch(() => ({ stdout: '' }));
  for (const line of links.split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name && name.startsWith(prefix)) await run('ip', ['link', 'del', name]).catch(() => undefined);
  }
}

/**
 * PIDs of demo HTTP servers started with `--message <marker>` (to prove a service is single or
 * gone). Anchored on the server's own argv, so the daemon, whose argv carries the exec string, never matches.
 */
export async function pidsMatching(marker: string): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-f', `^\\S*node \\S*demo/http\\.js .*--message ${marker}$`]).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter(Boolean).map(Number).filter((p) => p !== process.pid);
}
