/**
 * The daemon on 32-bit ARM: boots the emulated armhf board (scripts/build-armhf.sh's image under
 * qemu-system-arm -M virt -cpu cortex-a15, TCG, its own armmp-lpae kernel) and runs
 * test/armhf/driver.sh inside it: a unit subset, the native addon's tests against the ARM kernel's
 * AF_PACKET rings, netns, veth and nftables, and the real daemon end to end (dig summons a process
 * service and curl gets its page; kill -9 and a restart adopt it; handshake masking with zero SYN
 * retransmits for a client in its own namespace). Each result is asserted here, from the vitest JSON
 * reports the board writes to a 9p share.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, haveCommand, isRoot } from '../helpers/daemon.js';
import { readBoardReport, type BoardReport } from '../helpers/armhf-board.js';

const IMAGE = join(process.env.JITSU_CACHE ?? '/var/cache/jitsu', 'armhf');
const artefacts = ['vmlinuz', 'initrd.gz', 'rootfs.ext4', 'build/Release/jitsu_native.node'].map((f) => join(IMAGE, f));
const missing = [
  ...(isRoot() ? [] : ['root']),
  ...(haveCommand('qemu-system-arm') ? [] : ['qemu-system-arm (apt-get install qemu-system-arm)']),
  ...artefacts.filter((f) => !existsSync(f)).map((f) => `${f} (run scripts/build-armhf.sh)`),
];
const why = missing.length ? `(skipped: needs ${missing.join(', ')})` : '';
/** The board's whole run: boot, 2 vitest runs, power-off. Measured ~? min on 2 shared cores. */
const BOARD_TIMEOUT_MS = 13 * 60_000;

let board: ChildProcess | undefined;
let out = '';
let consoleText = '';
let report: BoardReport | undefined;
let boardSeconds = 0;

beforeAll(async () => {
  if (missing.length) return;
  out = mkdtempSync(join(tmpdir(), 'jitsu-armhf-'));
  const t0 = performance.now();
  const child = spawn(join(ROOT, 'test/armhf/run-board.sh'), [out, 'test'], { stdio: ['ignore', 'pipe', 'pipe'] });
  board = child;
  child.stdout.on('data', (d: Buffer) => (consoleText += d.toString('latin1')));
  child.stderr.on('data', (d: Buffer) => (consoleText += d.toString('latin1')));
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      consoleText += `\n[armhf-board test] no power-off within ${BOARD_TIMEOUT_MS / 60_000} min: killing QEMU\n`;
      child.kill('SIGKILL');
    }, BOARD_TIMEOUT_MS);
    child.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  board = undefined;
  boardSeconds = (performance.now() - t0) / 1000;
  report = readBoardReport(out);
  console.log(`FIGURE armhf-board run (emulated, TCG, 2 vCPUs): ${boardSeconds.toFixed(0)} s; ${report.groups.map((g) => `${g.name} ${g.seconds.toFixed(0)} s`).join(', ')}`);
}, BOARD_TIMEOUT_MS + 60_000);

afterAll(() => {
  board?.kill('SIGKILL');
  if (out) rmSync(out, { recursive: true, force: true });
});

/** The board's own words when something is missing: its console tail and the group's log tail. */
function context(group?: string): string {
  const log = group && out && existsSync(join(out, `${group}.log`)) ? readFileSync(join(out, `${group}.log`), 'latin1').slice(-3000) : '';
  return `console:\n${consoleText.slice(-2000)}\n${group ?? ''} log:\n${log}`;
}

function expectPassed(group: string, title: RegExp, atLeast = 1): void {
  const results = report?.results(group);
  expect(results, context(group)).toBeDefined();
  const matching = results!.filter((r) => title.test(r.fullName));
  expect(matching.length, `${group}: tests matching ${title}\n${context(group)}`).toBeGreaterThanOrEqual(atLeast);
  const failed = matching.filter((r) => r.status !== 'passed').map((r) => `${r.fullName}: ${r.status} ${r.failureMessages.join('\n').slice(0, 800)}`);
  expect(failed).toEqual([]);
}

describe.skipIf(missing.length > 0)(`the daemon on an emulated armhf board ${why}`, () => {
  it('boots its own 32-bit ARM kernel and the armv7l Node, and powers off when done', () => {
    expect(report?.done, context()).toBe(true);
    const facts = report!.facts;
    expect(facts.uname).toMatch(/^Linux \S+-armmp-lpae armv7l$/);
    expect(facts.node).toMatch(/^v20\.\d+\.\d+ arm hard arm_version=7$/);
    expect(facts.long_bits).toBe('32');
  });

  it('the unit subset passes on armhf (native loader, packet views, flow table, DNS wire, /proc parsers)', () => {
    expectPassed('unit', /./, 100);
    expect(report!.failed('unit'), context('unit')).toEqual([]);
  });

  it("the native addon's tests pass against the ARM kernel (AF_PACKET V2/V3 rings, batched UDP, pidfd, jitsu-activate)", () => {
    expectPassed('native', /./, 20);
    expectPassed('native', /--rlimit as= takes byte counts above 4 GiB/);
    expect(report!.failed('native'), context('native')).toEqual([]);
  });

  it('dig summons a process service in its namespace and curl gets its page', () => {
    expectPassed('e2e', /boots a service on its first query, answers authoritatively, and curl gets its reply/);
  });

  it('kill -9 and a restart adopt the running service without a second boot', () => {
    expectPassed('e2e', /adopts services still running after the daemon is killed and restarted/);
  });

  it('handshake masking: a client in its own namespace connects with 0 SYN retransmits over a 3 s boot', () => {
    expectPassed('masking', /mask=handshake, 3000 ms boot/);
  });
});
