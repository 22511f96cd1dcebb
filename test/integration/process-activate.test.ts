/** The jitsu-activate launcher binary on its own: fd layout, env, netns entry, exit codes, log cap. */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const activate = join(import.meta.dirname, '..', '..', 'build', 'Release', 'jitsu-activate');
const canRun = existsSync(activate) && process.getuid?.() === 0;
const NETNS = 'jt2-act-ns';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function launch(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(activate, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A free loopback TCP port (bound then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe.skipIf(!canRun)('jitsu-activate launcher', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jt2-act-'));
    await run('ip', ['netns', 'del', NETNS]).catch(() => undefined);
    await run('ip', ['netns', 'add', NETNS]);
  });
  afterAll(async () => {
    await run('ip', ['netns', 'del', NETNS]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('puts the sockets on fds 3.. in order, inheritable, with LISTEN_FDS/PID/FDNAMES for the exec\'d pid', async () => {
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const script = 'echo "$LISTEN_FDS $LISTEN_PID $$ $LISTEN_FDNAMES"; for fd in 3 4 5; do readlink /proc/$$/fd/$fd; done; cat /proc/$$/net/tcp /proc/$$/net/tcp6 /proc/$$/net/udp';
    const r = await launch(['--listen', `tcp:127.0.0.1:${a}`, '--listen', `tcp:[::1]:${b}`, '--listen', `udp:127.0.0.1:${c}`, '--', '/bin/sh', '-c', script]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const [count, listenPid, shellPid, names] = lines[0]!.split(' ');
    expect(count).toBe('3');
    expect(listenPid).toBe(shellPid); // exec kept the pid
    expect(names).toBe(`tcp-${a}:tcp-${b}:udp-${c}`);
    for (const l of lines.slice(1, 4)) expect(l).toMatch(/^socket:\[\d+\]$/);
    const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
    expect(r.stdout).toContain(`0100007F:${hex(a)} 00000000:0000 0A`); // LISTEN
    expect(r.stdout).toMatch(new RegExp(`00000000000000000000000001000000:${hex(b)} 0+:0000 0A`));
    expect(r.stdout).toContain(`0100007F:${hex(c)}`);
  });

  it('queues connections made before the program accepts (socket activation)', async () => {
    const port = await freePort();
    // The late program is this Node (python3 is not on every host the suite runs on: the ARM board).
    const late = "const s = require('net').createServer((c) => { c.end('late hello'); s.close(); }); s.listen({ fd: 3 });";
    const child = spawn(activate, ['--listen', `tcp:127.0.0.1:${port}`, '--', '/bin/sh', '-c', `sleep 0.4; exec "${process.execPath}" -e "${late}"`], {
      stdio: 'ignore',
    });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      const got = await new Promise<string>((resolve, reject) => {
        const sock = connect(port, '127.0.0.1');
        let text = '';
        // Node starts in seconds on an emulated board.
        sock.setTimeout(30_000, () => sock.destroy(new Error('timeout')));
        sock.on('data', (d: Buffer) => (text += d.toString()));
        sock.on('end', () => resolve(text));
        sock.on('error', reject);
      });
      expect(got).toBe('late hello');
      expect(performance.now() - t0).toBeGreaterThan(200);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('enters the named netns before binding and exec', async () => {
    const ino = statSync(`/run/netns/${NETNS}`).ino;
    const r = await launch(['--netns', `/run/netns/${NETNS}`, '--listen', 'tcp::8080', '--', '/bin/sh', '-c', 'readlink /proc/$$/ns/net; cat /proc/$$/net/tcp']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`net:[${ino}]`);
    expect(r.stdout).toContain('00000000:1F90 00000000:0000 0A');
  });

  it('clears inherited LISTEN_* without --listen, and changes directory with --chdir', async () => {
    const env = { ...process.env, LISTEN_FDS: '2', LISTEN_PID: '1', LISTEN_FDNAMES: 'x' };
    const r = await launch(['--chdir', dir, '--', '/bin/sh', '-c', 'echo "[$LISTEN_FDS][$LISTEN_PID][$LISTEN_FDNAMES] $(pwd)"'], env);
    expect(r.stdout.trim()).toBe(`[][][] ${dir}`);
  });

  it('writes one byte to --ready-fd once the sockets listen, then closes it', async () => {
    const port = await freePort();
    const child = spawn(activate, ['--ready-fd', '3', '--listen', `tcp:127.0.0.1:${port}`, '--', '/bin/sh', '-c', 'ls /proc/$$/fd | wc -l'], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    const got: string[] = [];
    child.stdio[3]!.on('data', (d: Buffer) => got.push(d.toString()));
    const closed = new Promise((r) => child.stdio[3]!.on('close', r));
    await new Promise((r) => child.on('close', r));
    await closed;
    expect(got.join('')).toBe('1');
  });

  it('--supervise: the command runs in its own session under a supervisor that records its exit', async () => {
    const exitFile = join(dir, 'svc.exit');
    const port = await freePort();
    const child = spawn(
      activate,
      ['--ready-fd', '3', '--supervise', exitFile, '--listen', `tcp:127.0.0.1:${port}`, '--', '/bin/sh', '-c', 'echo "$$ $(ps -o pgid= -p $$) $PPID $LISTEN_PID"; sleep 0.2; exit 5'],
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    );
    let reported = '';
    let out = '';
    child.stdio[3]!.on('data', (d: Buffer) => (reported += d.toString()));
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const launcherExit = await new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    expect(launcherExit).toBe(0); // the launcher exits at once; the command lives on
    for (let i = 0; i < 100 && !existsSync(exitFile); i++) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 100 && !readFileSync(exitFile, 'utf8').includes('}'); i++) await new Promise((r) => setTimeout(r, 10));
    const pid = Number.parseInt(reported, 10);
    expect(reported).toBe(`${pid}\n`);
    const [svcPid, pgid, ppid, listenPid] = out.trim().split(/\s+/).map(Number);
    expect(svcPid).toBe(pid);
    expect(pgid).toBe(pid); // own process group
    expect(listenPid).toBe(pid);
    expect(ppid).not.toBe(child.pid); // the supervisor, not the launcher
    expect(JSON.parse(readFileSync(exitFile, 'utf8'))).toEqual({ pid, code: 5, signal: null });
  });

  it('exits with a distinct code and one stderr line per failure', async () => {
    const cases: [string[], number, RegExp][] = [
      [['--bogus', 'x', '--', 'true'], 64, /usage/],
      [['--listen', 'sctp:1.2.3.4:1', '--', 'true'], 64, /tcp: or udp:/],
      [['--listen', 'tcp:1.2.3:80', '--', 'true'], 64, /bad IPv4/],
      [['--listen', 'tcp::99999', '--', 'true'], 64, /port out of range/],
      [['--netns', '/run/netns/jt2-no-such-ns', '--', 'true'], 65, /open netns/],
      [['--netns', '/etc/hostname', '--', 'true'], 66, /setns/],
      [['--chdir', '/nonexistent-jt2', '--', 'true'], 68, /chdir/],
      [['--log', '/nonexistent-jt2/x.log', '--', 'true'], 70, /open log/],
      [['--', 'jt2-no-such-command'], 127, /exec jt2-no-such-command/],
      [['--supervise', '/nonexistent-jt2/exit', '--', 'true'], 71, /open exit record/],
    ];
    const notExec = join(dir, 'not-executable');
    writeFileSync(notExec, '#!/bin/sh\n');
    chmodSync(notExec, 0o644);
    cases.push([['--', notExec], 126, /Permission denied/]);
    for (const [args, code, msg] of cases) {
      const r = await launch(args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  // memory= beyond 2 GiB: on armhf a long is 32 bits, and the launcher once parsed the bytes into one
  // (exit 64 for as=4294967296); rlim_t is 64 bits there only with _FILE_OFFSET_BITS=64.
  // A 32-bit kernel keeps rlimits in an unsigned long: it stores 4 GiB or more as RLIM_INFINITY, which
  // limits nothing a 32-bit address space could reach anyway. `ulimit -v` then says "unlimited".
  const kernelWordBits = ['arm', 'ia32'].includes(process.arch) ? 32 : 64;
  it('--rlimit as= takes byte counts above 4 GiB on every architecture, and refuses junk', async () => {
    for (const bytes of [2 ** 31, 2 ** 32, 2 ** 33 + 4096]) {
      const r = await launch(['--rlimit', `as=${bytes}`, '--', 'sh', '-c', 'ulimit -v']);
      expect({ bytes, code: r.code, stderr: r.stderr }).toEqual({ bytes, code: 0, stderr: '' });
      const expected = kernelWordBits === 32 && bytes >= 2 ** 32 ? 'unlimited' : String(Math.floor(bytes / 1024));
      expect({ bytes, readBack: r.stdout.trim() }).toEqual({ bytes, readBack: expected });
    }
    for (const bad of ['0', '-1', '12x', '', '18446744073709551615', '99999999999999999999999']) {
      const r = await launch(['--rlimit', `as=${bad}`, '--', 'true']);
      expect({ bad, code: r.code }).toEqual({ bad, code: 64 });
      expect(r.stderr).toMatch(/--rlimit value must be a positive integer/);
    }
  });

  it('fails with 67 when a port stays taken', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      const r = await launch(['--listen', `tcp:127.0.0.1:${port}`, '--', 'true']);
      expect(r.code).toBe(67);
      expect(r.stderr).toMatch(/bind tcp:127.0.0.1:\d+: Address already in use/);
    } finally {
      server.close();
    }
  });

  it('logs stdout+stderr to --log and keeps it under --log-max', async () => {
    const log = join(dir, 'svc.log');
    const r = await launch(['--log', log, '--log-max', '4096', '--', '/bin/sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo last-words >&2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    // the logger is detached: give it a moment to drain
    for (let i = 0; i < 50 && !readFileSync(log, 'utf8').includes('last-words'); i++) await new Promise((res) => setTimeout(res, 20));
    const current = readFileSync(log, 'utf8');
    expect(current).toContain('last-words');
    expect(statSync(log).size + statSync(`${log}.1`).size).toBeLessThanOrEqual(4096);
  });
});
