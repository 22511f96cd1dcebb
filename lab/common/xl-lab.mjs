// What both Xen labs' drivers (lab/xen/driver.mjs on x86, lab/xen-arm/driver.mjs on armhf) do in dom0:
// record observations, run commands with bounds, ask dig, curl and xl, and read the xl calls the daemon
// made (through a PATH shim that logs each one, then execs the real xl). Plain JavaScript, no build step:
// it runs from the checkout (9p) or from dom0's RAM copy of it.
import { execFile } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const XL = '/usr/sbin/xl';
export const SHIM_DIR = '/run/xl-shim';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to its end or its bound (SIGKILL); never rejects: { code, stdout, stderr, ms }. */
export function run(cmd, args, timeoutMs = 60_000) {
  return new Promise((resolve) => {
    const started = performance.now();
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: performance.now() - started });
    });
  });
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes; returns the value or undefined. */
export async function waitFor(probe, timeoutMs, stepMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(stepMs);
  }
}

/** One A query to the daemon on port 53: { status, answer, ms }. */
export async function dig(name, timeS) {
  const r = await run('dig', ['@127.0.0.1', '-p', '53', name, 'A', `+time=${timeS}`, '+tries=1', '+noall', '+answer', '+comments'], (timeS + 10) * 1000);
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? (r.code === 9 ? 'TIMEOUT' : `dig-exit-${r.code}`);
  const answer = /\sIN\s+A\s+([0-9.]+)/.exec(r.stdout)?.[1] ?? null;
  return { status, answer, ms: Math.round(r.ms) };
}

export async function curl(url, maxS = 10) {
  const r = await run('curl', ['-s', '-S', '-m', String(maxS), '-o', '-', '-w', '\\n%{time_connect} %{time_starttransfer}', url], (maxS + 5) * 1000);
  const lines = r.stdout.split('\n');
  const timing = (lines.pop() ?? '').split(' ').map(Number);
  return { ok: r.code === 0, body: lines.join('\n'), code: r.code, connectS: timing[0], firstByteS: timing[1], err: r.stderr.trim().slice(0, 300) };
}

/** curl that expects the page: a few attempts, since one spawn can overrun its bound on a loaded TCG dom0. */
export async function curlPage(url, attempts = 3) {
  let r;
  for (let i = 0; i < attempts; i++) {
    r = await curl(url, 20);
    if (r.ok) return { ...r, attempts: i + 1 };
  }
  return { ...r, attempts };
}

/** `xl list` as { name: { domid, flags } }. */
export async function xlList() {
  const r = await run(XL, ['list']);
  const domains = {};
  for (const line of r.stdout.split('\n').slice(1)) {
    const m = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([rbpscd-]{6})/.exec(line);
    if (m) domains[m[1]] = { domid: Number(m[2]), flags: m[5] };
  }
  return domains;
}

/**
 * A lab's record: `say` (progress), `result` (one scenario's observations, to OUT/results.jsonl and as a
 * `LAB-RESULT {json}` line; with `console`, also written to /dev/console for a driver whose stdout is a
 * file) and the xl calls the daemon made through the shim, which `installShim` puts in SHIM_DIR.
 */
export function labRecord(out, { console: toDevConsole = false } = {}) {
  const t0 = Date.now();
  const xlCallsFile = join(out, 'xl-calls.log');
  const emit = (line) => {
    console.log(line);
    if (!toDevConsole) return;
    try {
      appendFileSync('/dev/console', line + '\n');
    } catch {
      // the driver's log has it
    }
  };
  const up = () => ((Date.now() - t0) / 1000).toFixed(1);
  const lines = () => (existsSync(xlCallsFile) ? readFileSync(xlCallsFile, 'utf8').split('\n').filter(Boolean) : []);
  /** The xl commands the daemon ran, e.g. ['list', 'create /run/...']. */
  const xlCalls = () => lines().map((l) => l.split(' ').slice(1).join(' '));
  return {
    up,
    say: (msg) => emit(`LAB: [${up()} s] ${msg}`),
    result(scenario, data) {
      const line = JSON.stringify({ scenario, ...data });
      appendFileSync(join(out, 'results.jsonl'), line + '\n');
      emit(`LAB-RESULT ${line}`);
    },
    installShim() {
      mkdirSync(SHIM_DIR, { recursive: true });
      writeFileSync(join(SHIM_DIR, 'xl'), `#!/bin/sh\necho "$(/usr/bin/date +%s.%N) $*" >> ${xlCallsFile}\nexec ${XL} "$@"\n`);
      chmodSync(join(SHIM_DIR, 'xl'), 0o755);
    },
    xlCalls,
    count: (verb) => xlCalls().filter((c) => c.split(' ')[0] === verb).length,
    /** When the first `xl VERB` at or after `after` (ms since the epoch) ran, in ms since the epoch. */
    firstCallTime(verb, after = 0) {
      for (const l of lines()) {
        const [ts, v] = l.split(' ');
        if (v === verb && Number(ts) * 1000 >= after) return Number(ts) * 1000;
      }
      return undefined;
    },
  };
}
