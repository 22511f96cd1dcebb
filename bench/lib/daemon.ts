/**
 * Runs the real `jitsu` CLI (dist/src/cli/main.js) as a child process, as users do, and reads its
 * public surfaces: the `jitsu ready` log line, /metrics and /status.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stageDemoServer } from '../../src/demo/stage.js';
import { deferCleanup } from './cleanup.js';
import { freePort } from './net.js';
import { start, tail, type Proc } from './proc.js';
import { sweepNetwork } from './sweep.js';

let stagedDemo: string | undefined;

/** The demo server the bench's services run, staged where the unprivileged service user reaches it. */
export function benchDemoServer(): string {
  stagedDemo ??= stageDemoServer('/var/tmp/jitsu-bench-demo');
  return stagedDemo;
}

export interface DaemonOptions {
  root: string;
  /** Extra flags (bridge, delays, timeouts...). DNS port, metrics and state are set here. */
  flags: string[];
  services: string[];
  /** Also serve DNS on these addresses (e.g. the host address on the bridge). */
  extraBind?: string[];
  readyTimeoutMs?: number;
}

export interface RunningDaemon {
  proc: Proc;
  pid: number;
  dnsPort: number;
  metricsPort: number;
  metricsText(): Promise<string>;
  status(): Promise<DaemonStatusDoc>;
  stop(): Promise<void>;
  log(): string;
}

export interface ServiceStatusDoc {
  service: string;
  backend: string;
  ip: string;
  state: string;
  bootCount: number;
  bootFailures: number;
  lastBootMs: number | null;
  lastError: string | null;
  pid: number | null;
  /** What the backend holds ahead while the service is stopped (precreate, prespawn). */
  standbyPid: number | null;
}

export interface DaemonStatusDoc {
  services: ServiceStatusDoc[];
}

export async function startJitsu(opts: DaemonOptions): Promise<RunningDaemon> {
  const dnsPort = await freePort();
  const metricsPort = await freePort();
  const state = mkdtempSync(join(tmpdir(), 'jt6-bench-state-'));
  const bind = ['127.0.0.1', ...(opts.extraBind ?? [])].join(',');
  const args = [
    join(opts.root, 'dist/src/cli/main.js'),
    '-b',
    bind,
    '-l',
    String(dnsPort),
    '-f',
    '0.0.0.0',
    '--state',
    state,
    '--metrics',
    `127.0.0.1:${metricsPort}`,
    ...opts.flags,
    ...opts.services,
  ];
  const proc = start(process.execPath, args);
  const stop = deferCleanup(async () => {
    await proc.kill(20_000);
    rmSync(state, { recursive: true, force: true });
    const left = await sweepNetwork();
    if (left.length) {
      const exit = await proc.exited;
      const lastLines = proc.stderr().trim().split('\n').slice(-3).join(' | ');
      process.stderr.write(`[bench] jitsu (exit ${exit}) left behind: ${left.join(', ')}; its last log lines: ${lastLines}\n`);
    }
  });
  try {
    await proc.waitFor(/msg="?jitsu ready/, opts.readyTimeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw new Error(`jitsu did not start: ${err instanceof Error ? err.message : String(err)}`);
  }
  const base = `http://127.0.0.1:${metricsPort}`;
  return {
    proc,
    pid: proc.pid,
    dnsPort,
    metricsPort,
    metricsText: async () => (await fetch(`${base}/metrics`)).text(),
    status: async () => (await (await fetch(`${base}/status`)).json()) as DaemonStatusDoc,
    stop,
    log: () => tail(proc.stderr(), 2000),
  };
}

/** Value of one sample line of Prometheus text, e.g. name `x_sum` with labels `{step="a"}`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    const ok = Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`));
    if (!ok) continue;
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) return value;
  }
  return undefined;
}
