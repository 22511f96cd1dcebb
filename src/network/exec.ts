import { spawn } from 'node:child_process';
import { JitsuError } from '../errors.js';

/** Bounded capture of a tool's output: error messages need the first few KiB, never more. */
const MAX_CAPTURE = 64 * 1024;

export interface ToolResult {
  stdout: string;
  stderr: string;
  status: number | null;
}

/** Run a tool once, feeding `input` on stdin; never throws on a non-zero exit (callers decide). */
export function runTool(cmd: string, args: readonly string[], input?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    child.on('error', (err) =>
      reject(new JitsuError('NETWORK_SETUP', `cannot run ${cmd}: ${err.message} (is iproute2 installed?)`, { command: cmd }, { cause: err })),
    );
    child.on('close', (status) => resolve({ stdout, stderr, status }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** NETWORK_SETUP naming the command and the first lines of its stderr. */
export function failure(what: string, stderr: string, details: Record<string, unknown>): JitsuError {
  const reason = stderr.trim().split('\n').slice(0, 4).join('; ') || 'no error output';
  return new JitsuError('NETWORK_SETUP', `network setup failed: \`${what}\`: ${reason}`, { ...details, command: what, stderr: stderr.trim() });
}

/** `ip ARGS...`; throws NETWORK_SETUP naming the command and its stderr. Returns stdout. */
export async function ip(args: readonly string[]): Promise<string> {
  const res = await runTool('ip', args);
  if (res.status !== 0) throw failure(`ip ${args.join(' ')}`, res.stderr, {});
  return res.stdout;
}

/** `bridge ARGS...` (iproute2); throws NETWORK_SETUP on failure. */
export async function bridgeTool(args: readonly string[]): Promise<string> {
  const res = await runTool('bridge', args);
  if (res.status !== 0) throw failure(`bridge ${args.join(' ')}`, res.stderr, {});
  return res.stdout;
}

export interface BatchOptions {
  /** Run the batch inside this named netns (`ip -n NS -batch -`). */
  netns?: string;
  /** Keep going after a failed line (`-force`) and report every failure; default stops at the first. */
  force?: boolean;
}

/**
 * Apply many `ip` commands in one exec (`ip -batch -`): one fork instead of one per command.
 * A failure names the exact batch line that failed (ip reports `Command failed -:N`).
 */
export async function ipBatch(lines: readonly string[], opts: BatchOptions = {}): Promise<void> {
  if (lines.length === 0) return;
  const args: string[] = [];
  if (opts.netns) args.push('-n', opts.netns);
  if (opts.force) args.push('-force');
  args.push('-batch', '-');
  const res = await runTool('ip', args, lines.join('\n') + '\n');
  if (res.status === 0) return;
  let failed = [...res.stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => lines[Number(m[1]) - 1] ?? `line ${m[1]}`);
  if (failed.length === 0) {
    // Argument errors make ip exit without a line number; find the line holding the quoted bad word.
    const words = [...res.stderr.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
    const line = lines.find((l) => words.some((w) => l.split(' ').includes(w)));
    if (line) failed = [line];
  }
  const prefix = opts.netns ? `ip -n ${opts.netns} ` : 'ip ';
  const what = failed.length > 0 ? failed.map((l) => prefix + l).join(' | ') : `${prefix}-batch (${lines.length} commands)`;
  throw failure(what, res.stderr.replace(/Command failed -:\d+\n?/g, ''), { netns: opts.netns, failedLines: failed });
}
