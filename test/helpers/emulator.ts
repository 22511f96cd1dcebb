/**
 * An emulated machine run to its power-off (the Xen labs, the armhf board): its serial console kept,
 * the time each stage first showed there, and a bound after which QEMU is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface EmulatorRun {
  consoleText: string;
  /** ms from the start to each stage's first console line, and `total`. */
  marks: Record<string, number>;
}

/** The run under way, so afterAll can kill it when the test ends early. */
let running: ChildProcess | undefined;
export const killEmulator = (): void => void running?.kill('SIGKILL');

/** Runs `script args` to its end (the machine powers off) or kills it after `timeoutMs`. */
export async function runToPowerOff(script: string, args: string[], stages: Array<[string, RegExp]>, timeoutMs: number): Promise<EmulatorRun> {
  const run: EmulatorRun = { consoleText: '', marks: {} };
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
