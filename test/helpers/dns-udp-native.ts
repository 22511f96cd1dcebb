/** Helpers for the batched UDP socket tests: plain dgram clients and a private-netns runner. */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ADDON_PATH = join(ROOT, 'build/Release/jitsu_native.node');

/** A UDP client that records every datagram it receives. */
export interface Client {
  readonly sock: dgram.Socket;
  readonly received: Buffer[];
  send(payload: Buffer | string, port: number, address: string): void;
  /** Resolves once `n` datagrams arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<Buffer[]>;
  close(): void;
}

export async function client(family: 4 | 6): Promise<Client> {
  // A burst of replies lands before the client reads: room for thousands (rmem_max permitting).
  const sock = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => sock.bind(0, family === 6 ? '::1' : '127.0.0.1', r));
  const received: Buffer[] = [];
  const waiters: (() => void)[] = [];
  sock.on('message', (m) => {
    received.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  return {
    sock,
    received,
    send: (payload, port, address) => sock.send(typeof payload === 'string' ? Buffer.from(payload) : payload, port, address),
    async waitFor(n, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${received.length} of ${n} datagrams arrived`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return received;
    },
    close: () => sock.close(),
  };
}

export const haveNetns = process.getuid?.() === 0 && existsSync('/usr/sbin/ip') && existsSync('/usr/sbin/tc');

/** Creates a private network namespace with only its own loopback up; returns its name and a remover. */
export function makeNetns(tag: string): { name: string; remove(): void } {
  const name = `dnsudp-${tag}-${process.pid}`;
  const run = (args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  run(['netns', 'add', name]);
  try {
    run(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    spawnSync('ip', ['netns', 'del', name]);
    throw err;
  }
  return { name, remove: () => void spawnSync('ip', ['netns', 'del', name]) };
}

/** Runs `tc ARGS` inside the namespace. */
export function tcIn(ns: string, args: string[]): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'tc', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tc ${args.join(' ')}: ${r.stderr.trim()}`);
}

/**
 * How much slower than this host the tests run: the emulated armhf board sets
 * JITSU_TEST_TIME_SCALE (test/armhf/driver.sh), where a node start alone takes seconds.
 */
export const TIME_SCALE = Math.max(1, Number(process.env['JITSU_TEST_TIME_SCALE'] ?? 1) || 1);

/** Runs a CommonJS script with node inside the namespace (bounded in time); parses its last stdout line as JSON. */
export function nodeIn<T>(ns: string, script: string, timeoutMs = 20_000 * TIME_SCALE): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`script exited ${code}: ${err.slice(-2000)}`));
      try {
        resolvePromise(JSON.parse(last) as T);
      } catch {
        reject(new Error(`script printed no JSON: ${out.slice(-500)} ${err.slice(-1000)}`));
      }
    });
  });
}
