/**
 * The daemon on 32-bit ARM: boots the emulated armhf board (scripts/build-armhf.sh's image under
 * qemu-system-arm -M virt -cpu cortex-a15, TCG, its own armmp-lpae kernel) and runs
 * test/armhf/driver.sh inside it: the real daemon end to end against the ARM kernel's netns, veth,
 * nftables and AF_PACKET rings (test/armhf/e2e.sh: dig summons a process service and curl gets its
 * page; handshake masking with zero SYN retransmits for a client in its own namespace; kill -9 and a
 * restart adopt the service), then a unit subset and the native addon's tests in one vitest run.
 * Each result is asserted here, from what the board writes to a 9p share (e2e.txt, board.json).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, haveCommand, isRoot } from '../helpers/daemon.js';
import { readBoardReport, type BoardReport } from '../helpers/armhf-board.js';
import { killEmulator, runToPowerOff } from '../helpers/emulator.js';

const IMAGE = join(process.env.JITSU_CACHE ?? '/var/cache/jitsu', 'armhf');
const artefacts = ['vmlinuz', 'initrd.gz', 'rootfs.ext4', 'build/Release/jitsu_native.node'].map((f) => join(IMAGE, f));
const missing = [
  ...(isRoot() ? [] : ['root']),
  ...(haveCommand('qemu-system-arm') ? [] : ['qemu-system-arm (apt-get install qemu-system-arm)']),
  ...artefacts.filter((f) => !existsSync(f)).map((f) => `${f} (run scripts/build-armhf.sh)`),
];
const why = missing.length ? `(skipped: needs ${missing.join(', ')})` : '';
/**
 * The board's whole run: boot (~1 min), e2e.sh and one vitest run (the driver bounds each at 8 min),
 * power-off. Measured 15+ min with the host's 2 cores shared by other jobs (load 6-8).
 */
const BOARD_TIMEOUT_MS = 18 * 60_000;

let out = '';
let consoleText = '';
let report: BoardReport | undefined;
let boardSeconds = 0;

beforeAll(async () => {
  if (missing.length) return;
  out = mkdtempSync(join(tmpdir(), 'jitsu-armhf-'));
  const run = await runToPowerOff(join(ROOT, 'test/armhf/run-board.sh'), [out, 'test'], [], BOARD_TIMEOUT_MS);
  consoleText = run.consoleText;
  boardSeconds = run.marks['total']! / 1000;
  report = readBoardReport(out);
  console.log(`FIGURE armhf-board run (emulated, TCG, 2 vCPUs): ${boardSeconds.toFixed(0)} s; ${report.groups.map((g) => `${g.name} ${g.seconds.toFixed(0)} s`).join(', ')}`);
  for (const [name, value] of report.figures) console.log(`FIGURE armhf-board ${name} (emulated): ${value}`);
}, BOARD_TIMEOUT_MS + 60_000);

afterAll(() => {
  killEmulator();
  if (out) rmSync(out, { recursive: true, force: true });
});

/** The board's own words when something is missing: its console tail and the group's log tail. */
function context(group?: string): string {
  const log = group && out && existsSync(join(out, `${group}.log`)) ? readFileSync(join(out, `${group}.log`), 'latin1').slice(-3000) : '';
  return `console:\n${consoleText.slice(-2000)}\n${group ?? ''} log:\n${log}`;
}

const UNIT_FILES = ['src/native/', 'src/synjitsu/', 'src/backends/common/'];
const NATIVE_FILES = ['test/integration/process-activate.test.ts', 'test/integration/dns-udp-native.test.ts', 'test/integration/native-packet-worker.test.ts'];

/** Tests of the board's run whose file starts with one of `files` and whose full name matches `title`. */
function expectPassed(files: string[], title: RegExp, atLeast = 1): void {
  const results = report?.results('board');
  expect(results, context('board')).toBeDefined();
  const matching = results!.filter((r) => files.some((f) => r.file.startsWith(f)) && title.test(r.fullName));
  expect(matching.length, `tests in ${files.join(', ')} matching ${title}\n${context('board')}`).toBeGreaterThanOrEqual(atLeast);
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

  it('the unit subset passes on armhf (native loader, packet views, flow table, cookies, BPF, ELF32 linkage, /proc parsers)', () => {
    expectPassed(UNIT_FILES, /./, 35);
    expect(report!.failed('board', UNIT_FILES)).toEqual([]);
  });

  it("the native addon's tests pass against the ARM kernel (AF_PACKET ring in a worker, batched UDP, jitsu-activate)", () => {
    const results = report?.results('board');
    expect(results, context('board')).toBeDefined();
    const native = results!.filter((r) => NATIVE_FILES.some((f) => r.file.startsWith(f)));
    expect(native.filter((r) => r.status === 'passed').length, context('board')).toBeGreaterThanOrEqual(14);
    expect(native.filter((r) => r.status !== 'passed').map((r) => `${r.fullName}: ${r.status} ${r.failureMessages.join('\n').slice(0, 800)}`)).toEqual([]);
  });

  function expectCheck(name: string): void {
    const check = report?.checks.get(name);
    expect(check, `e2e.sh wrote no ${name} result\n${context('e2e')}`).toBeDefined();
    expect({ name, ...check }).toEqual({ name, passed: true, detail: check!.detail });
  }

  it('dig summons a process service in its own namespace and curl gets its page', () => {
    expectCheck('e2e');
    expectCheck('e2e_netns');
  });

  it('handshake masking: a client in its own namespace connects with 0 SYN retransmits over a 3 s boot', () => {
    expectCheck('masking');
    expect(report!.figures.get('masking_syn_retransmits')).toBe('0 count');
  });

  it('kill -9 and a restart adopt the running service (same pid, one boot)', () => {
    expectCheck('adoption');
  });

  it('a clean exit stops the services and removes the bridge and namespaces', () => {
    expectCheck('cleanup');
  });
});
