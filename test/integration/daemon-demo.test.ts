/** The README's first command: `jitsu --demo` serves demo.jitsu.test, and dig + curl work. */
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupNetwork, curl, dig, haveCommand, isRoot, startDaemon, tempDir, removeDir } from '../helpers/daemon.js';

const canRun = isRoot() && haveCommand('dig') && haveCommand('curl') && existsSync(CLI);
const bridge = `jt0demo${process.pid % 100}`;
const state = tempDir('jitsu-demo-');

afterAll(async () => {
  if (canRun) await cleanupNetwork(bridge);
  removeDir(state);
});

describe.skipIf(!canRun)('jitsu --demo', () => {
  it('summons the built-in HTTP service on the first query and prints how to try it', async () => {
    // Only the bridge and state dir are moved aside, so the test cannot disturb a demo a person runs.
    const d = await startDaemon({ bridge, stateDir: state, args: ['--demo', '-f', '0.0.0.0'], services: [], metrics: true });
    try {
      expect(d.logs()).not.toContain('Jitsu demo is running'); // banner goes to stdout after ready
      await d.waitForLog(/Jitsu demo is running/);
      expect(d.logs()).toContain(`dig @127.0.0.1 -p ${d.port} demo.jitsu.test`);
      const answer = await dig(d.port, 'demo.jitsu.test');
      expect(answer.answers[0]).toMatch(/IN\s+A\s+10\.77\.0\.10$/);
      expect(await curl('http://10.77.0.10/')).toContain('hello from demo.jitsu.test');
    } finally {
      expect(await d.stop()).toBe(0);
    }
  });
});
