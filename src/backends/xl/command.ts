/**
 * xl argv construction, the runner, and the mapping of xl failures to JitsuErrors.
 * Every failure gets a stable `code` plus a stable `details.reason`, and a message that says what to do.
 */
import { execFile } from 'node:child_process';
import { JitsuError, type ErrorCode } from '../../errors.js';

export type XlOp = 'create' | 'destroy' | 'shutdown' | 'pause' | 'unpause' | 'save' | 'restore' | 'list' | 'list-long';

export const xlArgv = {
  create: (configPath: string): string[] => ['create', configPath],
  destroy: (domain: string): string[] => ['destroy', domain],
  /** `-w` waits until the domain is gone, so a resolved call means the guest has really shut down. */
  shutdown: (domain: string): string[] => ['shutdown', '-w', domain],
  pause: (domain: string): string[] => ['pause', domain],
  unpause: (domain: string): string[] => ['unpause', domain],
  /** Saves the whole domain to `file` and ends it (stop mode hibernate); `restore` brings it back. */
  save: (domain: string, file: string): string[] => ['save', domain, file],
  restore: (file: string): string[] => ['restore', file],
  list: (): string[] => ['list'],
  listLong: (domain?: string): string[] => (domain === undefined ? ['list', '-l'] : ['list', '-l', domain]),
} as const;

export interface XlResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when xl could not be run at all (ENOENT, EACCES) or overran its time limit. */
  spawnError?: string;
  timedOut?: boolean;
}

/** Stable sub-codes in `details.reason`; tests and operators match on these. */
export type XlFailureReason =
  | 'xl-missing'
  | 'no-hypervisor'
  | 'no-privcmd'
  | 'permission'
  | 'no-domain'
  | 'no-space'
  | 'name-in-use'
  | 'config-rejected'
  | 'kernel-rejected'
  | 'out-of-memory'
  | 'vif-hotplug'
  | 'no-pv-control'
  | 'timeout'
  | 'xl-failed';

interface Rule {
  reason: XlFailureReason;
  test: RegExp;
  /** Overrides the per-operation code (environment problems are the same whatever the op). */
  code?: ErrorCode;
  /** Only for these operations (absent: all). */
  ops?: readonly XlOp[];
  fix: string;
}

// Order matters: the first match wins, environment failures before per-operation ones.
const RULES: readonly Rule[] = [
  {
    reason: 'no-hypervisor',
    test: /Can't find hypervisor information in sysfs|Hypervisor is not xen|Can't read hypervisor type/,
    code: 'BACKEND_UNSUPPORTED',
    fix: 'this host is not running under Xen (no /sys/hypervisor/type = xen): boot it as Xen dom0, or use -x qemu',
  },
  {
    reason: 'no-privcmd',
    test: /privileged command interface|cannot init xl context|cannot open libxc handle/,
    code: 'BACKEND_UNSUPPORTED',
    fix: 'xl cannot reach the hypervisor (no /dev/xen/privcmd): run as root in Xen dom0 with xenfs mounted and xencommons started, or use -x qemu',
  },
  {
    reason: 'permission',
    test: /Permission denied|Operation not permitted|must be root/i,
    code: 'BACKEND_UNSUPPORTED',
    fix: 'xl needs root in dom0: run jitsu as root',
  },
  {
    reason: 'no-domain',
    test: /is an invalid domain identifier|does not exist|Domain \S+ not found|No such domain/i,
    code: 'NOT_RUNNING',
    fix: 'the domain is not running (already stopped or destroyed)',
  },
  {
    reason: 'no-space',
    test: /No space left on device|ENOSPC/,
    fix: "the file system of the service's run dir (under --state) is full: a save needs room for the domain's whole memory",
  },
  {
    reason: 'name-in-use',
    test: /already exists/i,
    fix: 'a domain with this name already exists: destroy it (xl destroy NAME) or pick another service name',
  },
  {
    reason: 'config-rejected',
    test: /Failed to parse config|Failed to read config|parse error|syntax error|unknown option|Invalid parameter/i,
    fix: 'xl rejected the generated domain config: check the service keys (kernel, memory, nic, disk) against xl.cfg(5)',
  },
  {
    reason: 'kernel-rejected',
    test: /xc_dom_|no loader found|elf_|kernel image|failed to load kernel|Unable to load kernel/i,
    fix: 'Xen could not load the kernel: give a PV (or, with type=pvh, PVH) kernel image that exists in dom0',
  },
  {
    reason: 'out-of-memory',
    test: /failed to free memory|Cannot allocate memory|out of memory|not enough memory/i,
    fix: 'Xen has not enough free memory for the guest: lower memory= or free memory in dom0 (xl mem-set 0 ...)',
  },
  {
    reason: 'vif-hotplug',
    test: /vif-bridge|hotplug|Could not find bridge|bridge .* not found/i,
    code: 'NETWORK_SETUP',
    // Only a create plugs a vif. A destroy's device teardown also mentions hotplug scripts (seen on Xen
    // 4.17 when a destroy raced another: "destroy failed (rc=-15)"): that is a stop failure, not a network one.
    ops: ['create'],
    fix: "the guest's vif could not join its bridge: check that the nic= bridge exists and /etc/xen/scripts/vif-bridge works",
  },
  {
    reason: 'no-pv-control',
    test: /PV control interface not available|no PV drivers|PV shutdown control not available/i,
    fix: 'the guest has no PV shutdown support: stop it with mode destroy instead of shutdown',
  },
];

function opCode(op: XlOp): ErrorCode {
  switch (op) {
    case 'create':
    case 'unpause':
    case 'restore':
      return 'BOOT_FAILED';
    case 'destroy':
    case 'shutdown':
    case 'pause':
    case 'save':
      return 'STOP_FAILED';
    // list runs inside start and state; a failure there is a failure to (re)start the service.
    case 'list':
    case 'list-long':
      return 'BOOT_FAILED';
  }
}

/** The most telling line of xl's stderr: the last libxl error, else the last non-empty line. */
export function xlCause(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const errorLines = lines.filter((l) => /error|failed|cannot|invalid|not /i.test(l));
  return (errorLines.at(-1) ?? lines.at(-1) ?? '').slice(0, 500);
}

/** Turns a failed xl run into a JitsuError with a stable code, a stable `details.reason` and the fix. */
export function mapXlFailure(op: XlOp, argv: readonly string[], domain: string | undefined, r: XlResult): JitsuError {
  const base = { op, argv: ['xl', ...argv].join(' '), domain, exitCode: r.exitCode };
  if (r.spawnError !== undefined && !r.timedOut) {
    if (/ENOENT/.test(r.spawnError)) {
      return new JitsuError('BACKEND_UNSUPPORTED', 'xl is not installed: install xen-utils (Debian: apt-get install xen-utils-common xen-utils-4.17)', {
        ...base,
        reason: 'xl-missing',
        cause: r.spawnError,
      });
    }
    if (/EACCES|EPERM/.test(r.spawnError)) {
      return new JitsuError('BACKEND_UNSUPPORTED', `cannot run xl (${r.spawnError}): run jitsu as root in Xen dom0`, { ...base, reason: 'permission', cause: r.spawnError });
    }
    return new JitsuError(opCode(op), `xl ${argv[0] ?? ''} failed: ${r.spawnError}`, { ...base, reason: 'xl-failed', cause: r.spawnError });
  }
  if (r.timedOut) {
    return new JitsuError(opCode(op), `xl ${argv[0] ?? ''} did not finish in time${domain ? ` for domain ${domain}` : ''}: the guest may ignore shutdown; use stop mode destroy`, {
      ...base,
      reason: 'timeout',
    });
  }
  const text = `${r.stderr}\n${r.stdout}`;
  const cause = xlCause(r.stderr) || xlCause(r.stdout) || `exit status ${r.exitCode ?? r.signal}`;
  for (const rule of RULES) {
    if (rule.ops && !rule.ops.includes(op)) continue;
    if (rule.test.test(text)) {
      // The lines that say what went wrong, not libxl's clean-up lines after them (Xen 4.17 ends a refused
      // kernel with "Destruction of domain failed"; the reason is "xc_dom_find_loader: no loader found").
      const matching = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && rule.test.test(l));
      const telling = matching.length > 0 ? [...new Set(matching)].slice(0, 3).join(' | ').slice(0, 500) : cause;
      return new JitsuError(rule.code ?? opCode(op), `xl ${argv[0] ?? ''} failed${domain ? ` for domain ${domain}` : ''}: ${rule.fix} (xl said: ${telling})`, {
        ...base,
        reason: rule.reason,
        cause: telling,
      });
    }
  }
  return new JitsuError(opCode(op), `xl ${argv[0] ?? ''} failed${domain ? ` for domain ${domain}` : ''}: ${cause}`, { ...base, reason: 'xl-failed', cause });
}

const MAX_OUTPUT = 4 * 1024 * 1024;

/** Runs xl once. Never rejects: the caller decides what a failure means. */
export function runXl(xl: string, argv: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<XlResult> {
  return new Promise((resolve) => {
    const opts = { timeout: timeoutMs, maxBuffer: MAX_OUTPUT, killSignal: 'SIGKILL' as const, encoding: 'utf8' as const, ...(signal ? { signal } : {}) };
    execFile(xl, argv, opts, (err, stdout, stderr) => {
      if (!err) {
        resolve({ exitCode: 0, signal: null, stdout, stderr });
        return;
      }
      const e = err as NodeJS.ErrnoException & { code?: string | number; killed?: boolean; signal?: NodeJS.Signals | null };
      const result: XlResult = {
        exitCode: typeof e.code === 'number' ? e.code : null,
        signal: e.signal ?? null,
        stdout: stdout ?? '',
        stderr: stderr ?? '',
      };
      // String codes are spawn failures (ENOENT, EACCES) or output overruns; numbers are xl's exit status.
      if (typeof e.code === 'string' && e.code !== 'ABORT_ERR') result.spawnError = `${e.code}: ${e.message}`;
      if (e.killed && e.signal === 'SIGKILL' && !signal?.aborted) {
        result.timedOut = true;
        result.spawnError = 'timeout';
      }
      resolve(result);
    });
  });
}
