/**
 * The Xen labs' test rig (test/integration/xl-xen.test.ts on x86, xl-xen-arm.test.ts on armhf): boots a
 * lab's QEMU to its power-off within a bound, keeps its serial console and the time each stage first
 * showed there, and reads back what the lab's driver recorded per scenario.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';

export interface Dig {
  status: string;
  answer: string | null;
  ms?: number;
}
export interface Curl {
  ok: boolean;
  body: string;
  err: string;
}
export type Result = Record<string, unknown> & { scenario: string; error?: string };

export interface LabRun {
  consoleText: string;
  /** ms from the start to each stage's first console line, and `total`. */
  marks: Record<string, number>;
}

/** A running lab, so afterAll can kill it when the test ends early. */
let running: ChildProcess | undefined;
export const killLab = (): void => void running?.kill('SIGKILL');

/** Runs `script args` to its end (the lab powers off) or kills it after `timeoutMs`. */
export async function runLab(script: string, args: string[], stages: Array<[string, RegExp]>, timeoutMs: number): Promise<LabRun> {
  const run: LabRun = { consoleText: '', marks: {} };
  const t0 = performance.now();
  const child = spawn(script, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running = child;
  const onData = (d: Buffer): void => {
    run.consoleText += d.toString('latin1');
    for (const [name, re] of stages) if (run.marks[name] === undefined && re.test(run.consoleText)) run.marks[name] = performance.now() - t0;
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      run.consoleText += `\n[${script}] no power-off within ${timeoutMs / 60_000} min: killing QEMU\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  running = undefined;
  run.marks['total'] = performance.now() - t0;
  return run;
}

/** Adds each `{json}` line (one scenario's record) to `results`; a line that does not parse is an error record. */
export function collectResults(lines: Iterable<string>, results: Map<string, Result>): void {
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as Result;
      results.set(r.scenario, r);
    } catch {
      results.set('unparsable', { scenario: 'unparsable', error: `unparsable result line: ${line.slice(0, 200)}` });
    }
  }
}

/** Seconds with one decimal, or `?`. */
export const seconds = (ms: number | undefined | null): string => (ms === undefined || ms === null ? '?' : `${(ms / 1000).toFixed(1)} s`);

/** The scenario's record, asserted present and without an error; `context` explains a failure. */
export function scenarioResult(results: Map<string, Result>, scenario: string, context: string): Result {
  const r = results.get(scenario);
  expect(r, context).toBeDefined();
  expect(r!.error, context).toBeUndefined();
  return r!;
}
