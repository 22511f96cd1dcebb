/**
 * Child processes for benchmarks: each in its own process group so a kill takes its children too,
 * output captured with a bound, every wait bounded in time.
 */
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const OUTPUT_LIMIT = 1 << 20;

export interface Proc {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` on stdout+stderr, rejects after `ms` or on exit. */
  waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  /** SIGTERM the group, SIGKILL after `graceMs`; resolves once the leader exited. */
  kill(graceMs?: number): Promise<void>;
}

export function start(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: boolean } = {}): Proc {
  const child = spawn(cmd, args, { detached: true, stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    if (out.length < OUTPUT_LIMIT) out += d.toString();
    for (const w of watchers) w();
  });
  child.stderr!.on('data', (d: Buffer) => {
    // Logs: the latest lines matter most (why did it exit?), so keep the tail.
    err += d.toString();
    if (err.length > OUTPUT_LIMIT) err = err.slice(-OUTPUT_LIMIT / 2);
    for (const w of watchers) w();
  });
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('error', (e) => {
      err += String(e);
      done = true;
      resolve('spawn-error');
      for (const w of watchers) w();
    });
    child.on('exit', (code, signal) => {
      done = true;
      resolve(code ?? signal ?? 'unknown');
      for (const w of watchers) w();
    });
  });
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, ms) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = (out + '\n' + err).match(re);
          if (m) {
            finish();
            resolve(m);
          } else if (done) {
            finish();
            reject(new Error(`${cmd} exited before printing ${re}: ${tail(err || out)}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`${cmd} did not print ${re} within ${ms} ms: ${tail(err || out)}`));
        }, ms);
        const finish = (): void => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    async kill(graceMs = 3000) {
      if (done || proc.pid < 0) return;
      signalGroup(proc.pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(proc.pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Anything the leader left behind in its group goes too.
      signalGroup(proc.pid, 'SIGKILL');
    },
  };
  return proc;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

export function tail(text: string, chars = 400): string {
  const t = text.trim();
  return t.length > chars ? '…' + t.slice(-chars) : t;
}

/** Runs a command to completion (bounded); never throws: the caller decides what a failure means. */
export function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: OUTPUT_LIMIT, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error && code === 127 ? error.message : '') });
    });
  });
}

export async function which(cmd: string): Promise<string | undefined> {
  const r = await run('sh', ['-c', `command -v ${cmd}`], 5000);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

const CLOCK_TICKS = 100;

/** CPU seconds (user+system, all threads) a live process has used; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Direct children of a process (all its threads' children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'latin1').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples a process's CPU time until it exits; the last sample before exit is the figure. */
export function trackCpu(pid: number, everyMs = 200): { stop(): number } {
  let last = cpuSeconds(pid) ?? 0;
  const timer = setInterval(() => {
    const c = cpuSeconds(pid);
    if (c !== undefined) last = c;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const c = cpuSeconds(pid);
      if (c !== undefined) last = c;
      return last;
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
