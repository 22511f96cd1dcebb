/**
 * Once per `vitest run` of the integration files: a temporary directory for the whole run (TMPDIR,
 * so every state dir, socket and scratch file a test makes lands in it) and the demo HTTP server
 * staged where the tests' confined services can run it (see test/helpers/daemon.ts). Both are
 * removed when the run ends, however its files ended.
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILT_DEMO_SERVER, stageDemoServer } from '../../src/demo/stage.js';

export const DEMO_ENV = 'JITSU_TEST_DEMO_SERVER';

export default function setup(): () => void {
  const made: string[] = [];
  const runTmp = mkdtempSync(join(tmpdir(), 'jitsu-test-run-'));
  // Like /tmp itself: the unprivileged users the tests run services as may make files here too.
  chmodSync(runTmp, 0o1777);
  made.push(runTmp);
  // Test workers start after this and inherit the environment.
  process.env['TMPDIR'] = runTmp;
  if (process.getuid?.() === 0 && existsSync(BUILT_DEMO_SERVER)) {
    // Not under TMPDIR: a service's private /tmp would hide it.
    const demo = mkdtempSync('/var/tmp/jitsu-test-demo-');
    made.push(demo);
    process.env[DEMO_ENV] = stageDemoServer(demo);
  }
  return () => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  };
}
