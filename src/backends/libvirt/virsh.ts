/**
 * `virsh -c URI ...`, bounded in time and output, plus parsers for the two listings the backend
 * reads (domstate, domiflist). Going through virsh rather than a libvirt binding keeps the backend
 * dependency-free and identical to what an operator types.
 */
import { execFile } from 'node:child_process';
import { JitsuError } from '../../errors.js';
import type { RuntimeState } from '../backend.js';

export const DEFAULT_URI = 'qemu:///system';
const MAX_OUTPUT = 256 * 1024;

export interface VirshResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Run virsh; never throws for a non-zero exit (callers decide), only when virsh cannot run. */
export function virsh(uri: string, args: readonly string[], timeoutMs = 30_000): Promise<VirshResult> {
  return new Promise((resolve, reject) => {
    execFile('virsh', ['-q', '-c', uri, ...args], { timeout: timeoutMs, maxBuffer: MAX_OUTPUT, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean }) | null;
      if (e && e.code === 'ENOENT') {
        reject(new JitsuError('BACKEND_UNSUPPORTED', 'virsh is not installed (apt-get install -y libvirt-clients)', {}));
        return;
      }
      if (e?.killed) {
        resolve({ ok: false, stdout, stderr: `virsh ${args.join(' ')} timed out after ${timeoutMs} ms` });
        return;
      }
      resolve({ ok: !e, stdout, stderr });
    });
  });
}

/** The one-line reason from virsh's stderr ("error: ..." lines, joined). */
export function virshReason(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.replace(/^error:\s*/, '').trim()).filter(Boolean);
  return lines.join('; ') || 'no error output';
}

export type DomState = 'running' | 'paused' | 'shut off' | 'crashed' | 'pmsuspended' | 'in shutdown' | 'blocked' | 'idle' | 'dying' | 'unknown';

/** `virsh domstate` prints e.g. "running" or "shut off"; with --reason, "shut off (destroyed)". */
export function parseDomState(stdout: string): { state: DomState; reason?: string } {
  const line = stdout.trim().split('\n')[0] ?? '';
  const m = /^([a-z ]+?)(?:\s*\(([^)]*)\))?$/.exec(line.trim());
  const known: readonly string[] = ['running', 'paused', 'shut off', 'crashed', 'pmsuspended', 'in shutdown', 'blocked', 'idle', 'dying'];
  const state = (m && known.includes(m[1]!) ? m[1] : 'unknown') as DomState;
  return m?.[2] ? { state, reason: m[2] } : { state };
}

export function runtimeStateOf(s: DomState): RuntimeState {
  switch (s) {
    case 'running':
    case 'blocked':
    case 'idle':
    case 'in shutdown':
      return 'running';
    case 'paused':
    case 'pmsuspended':
      return 'paused';
    case 'shut off':
    case 'crashed':
    case 'dying':
      return 'stopped';
    default:
      return 'unknown';
  }
}

export interface DomIface {
  link: string;
  type: string;
  source: string;
  model: string;
  mac: string;
}

/** `virsh -q domiflist DOMAIN`: "jt4v1   bridge   jt4b9   virtio   02:00:...". A "-" link means not running. */
export function parseDomIfList(stdout: string): DomIface[] {
  const out: DomIface[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(f[4]!)) continue;
    out.push({ link: f[0]!, type: f[1]!, source: f[2]!, model: f[3]!, mac: f[4]!.toLowerCase() });
  }
  return out;
}

/** virsh says "failed to get domain" / "Domain not found" for a name libvirt does not know. */
export function isNoDomain(stderr: string): boolean {
  return /failed to get domain|Domain not found|no domain with matching name/i.test(stderr);
}
