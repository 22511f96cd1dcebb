import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readProcStat } from '../backends/common/proc.js';
import { nativeAvailable } from '../native/index.js';
import { silentLogger } from '../observe/log.js';
import { createExitWatcher } from './exit-watch.js';

/** A real child that lives until killed, and its identity as a handle records it. */
function child(): { pid: number; startTime: number; kill: () => void } {
  const c = spawn('sleep', ['30'], { stdio: 'ignore' });
  return { pid: c.pid!, startTime: readProcStat(c.pid!)!.startTime, kill: () => c.kill('SIGKILL') };
}

describe.each([
  ['pidfd', true],
  ['/proc polling', false],
] as const)('exit watch (%s)', (_name, useNative) => {
  it.skipIf(useNative && !nativeAvailable())('reports a process that dies, once, and not one that lives', async () => {
    const watcher = createExitWatcher(silentLogger, useNative ? undefined : null);
    const p = child();
    let exits = 0;
    const seen = new Promise<void>((resolve) => watcher.watch(p, () => (exits++, resolve())));
    await new Promise((r) => setTimeout(r, 120));
    expect(exits).toBe(0);
    p.kill();
    await seen;
    await new Promise((r) => setTimeout(r, 120));
    expect(exits).toBe(1);
  });

  it.skipIf(useNative && !nativeAvailable())('takes a pid whose start time is not the recorded one for gone (pid reuse)', async () => {
    const watcher = createExitWatcher(silentLogger, useNative ? undefined : null);
    const p = child();
    try {
      await new Promise<void>((resolve) => watcher.watch({ pid: p.pid, startTime: p.startTime - 1 }, resolve));
    } finally {
      p.kill();
    }
  });

  it.skipIf(useNative && !nativeAvailable())('says nothing once unwatched', async () => {
    const watcher = createExitWatcher(silentLogger, useNative ? undefined : null);
    const p = child();
    let exits = 0;
    const unwatch = watcher.watch(p, () => exits++);
    unwatch();
    p.kill();
    await new Promise((r) => setTimeout(r, 150));
    expect(exits).toBe(0);
  });
});
