/**
 * Running crun: argv construction, the cgroup work-around this kind of host needs, `crun state`
 * parsing and the mapping of crun failures to JitsuErrors.
 */
import { execFile } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { RuntimeState } from '../backend.js';
import { JitsuError, type ErrorCode } from '../../errors.js';
import { findExecutable } from '../common/path-lookup.js';

export interface CrunPaths {
  /** crun binary (default `crun` from PATH). */
  crun: string;
  /** `crun --root`: the container state dir, under the service's runDir. */
  root: string;
  /**
   * `crun --log=file:...` for `run`, whose stderr goes to the service log: crun's own error lands
   * here (the file is truncated before each run, so it stays one boot's worth).
   */
  log?: string;
}

/**
 * A cgroup v1+v2 "hybrid" host (v2 mounted at /sys/fs/cgroup/unified with a controller in it) makes
 * crun refuse to run ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
 * crun then runs in a private mount namespace without that mount and uses the v1 hierarchies
 * (freezer included, so pause/resume work). Pure cgroup v1 or v2 hosts run crun directly.
 */
export function detectHybridCgroups(mountinfo: string): boolean {
  let rootIsV2 = false;
  let unifiedV2 = false;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const mountPoint = line.slice(0, sep).split(' ')[4];
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (mountPoint === '/sys/fs/cgroup' && fsType === 'cgroup2') rootIsV2 = true;
    if (mountPoint === '/sys/fs/cgroup/unified' && fsType === 'cgroup2') unifiedV2 = true;
  }
  return unifiedV2 && !rootIsV2;
}

let hybridCached: boolean | undefined;
export function hostHasHybridCgroups(): boolean {
  if (hybridCached === undefined) {
    try {
      hybridCached = detectHybridCgroups(readFileSync('/proc/self/mountinfo', 'utf8'));
    } catch {
      hybridCached = false;
    }
  }
  return hybridCached;
}

const PRIVATE_NS_SCRIPT = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"';

const resolved = new Map<string, string>();
/**
 * Absolute path of a program on PATH (or the name itself if not found), looked up once: exec'ing a
 * bare name walks PATH on every call, and PATH can be long (nine failed execve()s for `sh` here).
 */
export function which(name: string): string {
  let path = resolved.get(name);
  if (path === undefined) {
    path = findExecutable(name, process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin') ?? name;
    resolved.set(name, path);
  }
  return path;
}

/**
 * The shell that runs the umount: busybox's (static, and runs `umount` as a built-in applet, so one
 * exec fewer) when busybox-static is installed, else /bin/sh.
 */
function privateNsPrefix(): string[] {
  const shell = existsSync('/bin/busybox') ? ['/bin/busybox', 'sh'] : ['/bin/sh'];
  return [which('unshare'), '--mount', '--propagation', 'private', ...shell, '-c', PRIVATE_NS_SCRIPT, 'sh'];
}
let prefixCached: string[] | undefined;

/**
 * The full command line for one crun invocation: [file, ...args]. Only container creation (`run`,
 * `create`) trips over hybrid cgroups; `start`, `kill`, `pause`, `resume`, `delete` and `state` work on
 * such a host as they are (measured with crun 1.8.1), so they skip the ≈ 6 ms wrapper.
 */
export function crunCommand(paths: CrunPaths, args: readonly string[], hybrid: boolean): string[] {
  const crun = [paths.crun, `--root=${paths.root}`, ...(paths.log ? [`--log=file:${paths.log}`] : []), ...args];
  const creates = args[0] === 'run' || args[0] === 'create';
  if (!(hybrid && creates)) return crun;
  prefixCached ??= privateNsPrefix();
  return [...prefixCached, ...crun];
}

export const crunArgv = {
  /** Detached run: crun returns once the container process runs; --preserve-fds hands it the sockets. */
  run: (id: string, bundle: string, pidFile: string, preserveFds: number): string[] => [
    'run',
    '--detach',
    `--bundle=${bundle}`,
    `--pid-file=${pidFile}`,
    ...(preserveFds > 0 ? [`--preserve-fds=${preserveFds}`] : []),
    id,
  ],
  /**
   * Created ahead (precreate=on): namespaces, mounts and the preserved sockets set up, the init
   * waiting on crun's exec fifo until `start`; crun returns once the container is created.
   */
  create: (id: string, bundle: string, pidFile: string, preserveFds: number): string[] => [
    'create',
    `--bundle=${bundle}`,
    `--pid-file=${pidFile}`,
    ...(preserveFds > 0 ? [`--preserve-fds=${preserveFds}`] : []),
    id,
  ],
  /** Lets a created container's init exec the program (opens the exec fifo); returns at once. */
  start: (id: string): string[] => ['start', id],
  kill: (id: string, signal: 'KILL' | 'TERM'): string[] => ['kill', id, signal],
  delete: (id: string): string[] => ['delete', '--force', id],
  pause: (id: string): string[] => ['pause', id],
  resume: (id: string): string[] => ['resume', id],
  state: (id: string): string[] => ['state', id],
} as const;

/**
 * What `crun start` does for a created container whose config has no poststart hook (crun 1.8,
 * libcrun_status_write_exec_fifo), without exec'ing crun (one exec of crun costs 15-30 ms on a
 * loaded host here, the whole rest ~0.1 ms): open the container's exec fifo for writing, unlink it
 * (crun's `state` then says running), write one byte, on which the waiting init execs the program.
 * The open does not block: with no reader (the init is gone) it fails with ENXIO. False when the
 * fifo is missing or has no reader, so the caller can fall back to `crun start` for its error.
 */
export function releaseCreated(root: string, id: string): boolean {
  const fifo = join(root, id, 'exec.fifo');
  let fd: number;
  try {
    fd = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    unlinkSync(fifo);
    writeSync(fd, Buffer.alloc(1));
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

export interface CrunState {
  status: string;
  pid: number;
}

/** `crun state` JSON -> status + pid. Throws on anything else. */
export function parseCrunState(text: string): CrunState {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== 'object' || doc === null) throw new Error('crun state: not a JSON object');
  const { status, pid } = doc as { status?: unknown; pid?: unknown };
  if (typeof status !== 'string') throw new Error('crun state: no status');
  return { status, pid: typeof pid === 'number' ? pid : 0 };
}

export function runtimeStateOf(status: string): RuntimeState {
  switch (status) {
    case 'running':
      return 'running';
    case 'paused':
      return 'paused';
    case 'stopped':
    case 'created':
      return 'stopped';
    default:
      return 'unknown';
  }
}

export interface ExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  spawnError?: string;
}

/** Runs a command once, bounded in time and output; never rejects. */
export function runCommand(cmd: readonly string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd[0]!, cmd.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ exitCode: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: string | number };
      const r: ExecResult = { exitCode: typeof e.code === 'number' ? e.code : null, stdout: stdout ?? '', stderr: stderr ?? '' };
      if (typeof e.code === 'string') r.spawnError = `${e.code}: ${e.message}`;
      else if (e.code === undefined || e.code === null) r.spawnError = `killed after ${timeoutMs} ms`;
      resolve(r);
    });
  });
}

/** crun's "no such container" answers (state/kill/delete of a container that is gone). */
export function isNoSuchContainer(text: string): boolean {
  // crun 1.8: "error opening file `ROOT/ID/status`: No such file or directory".
  return /error opening file `[^`]*\/status`: No such file|does not exist|container .* not found|cannot find container/i.test(text);
}

export type CrunOp = 'run' | 'create' | 'start' | 'kill' | 'delete' | 'pause' | 'resume' | 'state';

function opCode(op: CrunOp): ErrorCode {
  return op === 'run' || op === 'create' || op === 'start' || op === 'resume' || op === 'state' ? 'BOOT_FAILED' : 'STOP_FAILED';
}

/** A failed crun call -> JitsuError with crun's own last words as the cause. */
export function mapCrunFailure(op: CrunOp, id: string, r: ExecResult, crunLog: string): JitsuError {
  if (r.spawnError && /ENOENT/.test(r.spawnError)) {
    return new JitsuError('BACKEND_UNSUPPORTED', 'crun is not installed: apt-get install crun', { op, container: id, reason: 'crun-missing' });
  }
  const cause = lastLine(`${r.stderr}\n${crunLog}`) || r.spawnError || `exit status ${r.exitCode}`;
  if (isNoSuchContainer(cause)) {
    return new JitsuError('NOT_RUNNING', `container ${id} does not exist (already stopped)`, { op, container: id, reason: 'no-container', cause });
  }
  if (/cgroups in hybrid mode/.test(cause)) {
    return new JitsuError('BACKEND_UNSUPPORTED', `crun refuses this host's cgroup setup: ${cause}`, { op, container: id, reason: 'cgroups', cause });
  }
  return new JitsuError(opCode(op), `crun ${op} failed for container ${id}: ${cause}`, { op, container: id, reason: 'crun-failed', cause });
}

/** The last non-empty line; crun's JSON log lines are reduced to their `msg`. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const line = lines.at(-1) ?? '';
  if (line.startsWith('{')) {
    try {
      const msg = (JSON.parse(line) as { msg?: unknown }).msg;
      if (typeof msg === 'string') return msg;
    } catch {
      // not JSON after all
    }
  }
  return line.slice(0, 500);
}
