/**
 * The xl backend on a real Xen hypervisor on 32-bit ARM: boots the Xen-on-ARM lab (scripts/build-xen-arm.sh:
 * Debian's armhf Xen 4.17 under qemu-system-arm -M virt,virtualization=on -cpu cortex-a15, TCG, 2 vCPUs; dom0 is
 * the root of scripts/build-armhf.sh's board plus Xen's armhf toolstack, as an initramfs in RAM) and runs
 * lab/xen-arm/driver.mjs in dom0, which drives `jitsu -x xl` from this checkout (shared over 9p, with the
 * armhf native addon over its build/; dom0 copies what it needs to RAM) with Debian's dig and curl against an
 * Arm domU (the board's kernel and a busybox initramfs serving guest/init's page). Each scenario's
 * observations come back as LAB-RESULT lines on the serial console; each is asserted here.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, haveCommand, isRoot } from '../helpers/daemon.js';
import { killEmulator, runToPowerOff, type EmulatorRun } from '../helpers/emulator.js';
import { collectResults, scenarioResult, seconds as s, type Curl, type Dig, type Result } from '../helpers/xen-lab.js';

const CACHE = process.env['JITSU_CACHE'] || '/var/cache/jitsu';
const artefacts = [
  ...['xen', 'dom0.cpio', 'domU.cpio', 'manifest.txt'].map((f) => join(CACHE, 'xen-arm', f)),
  join(CACHE, 'armhf', 'vmlinuz'),
];
const missing = [
  ...(isRoot() ? [] : ['root']),
  ...(haveCommand('qemu-system-arm') ? [] : ['qemu-system-arm (apt-get install qemu-system-arm)']),
  ...(existsSync(join(ROOT, 'dist/src/cli/main.js')) ? [] : ['dist/ (npm run build:ts)']),
  ...artefacts.filter((f) => !existsSync(f)).map((f) => `${f} (run scripts/build-xen-arm.sh)`),
];
const why = missing.length ? `(skipped: needs ${missing.join(', ')})` : '';
/** Boot, one daemon start, two domU boots, power-off: 9-9.5 min with the 2 cores shared three ways (load
 *  4-6). The bound leaves room for a machine loaded more than that, not for a hang. */
const LAB_TIMEOUT_MS = 14 * 60_000;

let out = '';
let lab: EmulatorRun = { consoleText: '', marks: {} };
const results = new Map<string, Result>();

beforeAll(async () => {
  if (missing.length) return;
  out = mkdtempSync(join(tmpdir(), 'jitsu-xen-arm-'));
  // Stage times from the console, as the host sees them.
  lab = await runToPowerOff(join(ROOT, 'lab/xen-arm/boot.sh'), [out, 'driver'], [
    ['xen', /\*\*\* LOADING DOMAIN 0 \*\*\*/],
    ['dom0Init', /XENARM: dom0 userspace/],
    ['dom0Userspace', /LAB: dom0 userspace/],
    ['toolstack', /LAB: xen toolstack up/],
    ['daemon', /LAB: \[[0-9.]+ s\] daemon a .* up after/],
  ], LAB_TIMEOUT_MS);
  // A debugging aid: JITSU_XEN_ARM_CONSOLE=FILE keeps the whole serial console.
  if (process.env['JITSU_XEN_ARM_CONSOLE']) writeFileSync(process.env['JITSU_XEN_ARM_CONSOLE'], lab.consoleText);
  // From the console, not the results share: once a domU runs, dom0's virtio-mmio devices may stall.
  collectResults(Array.from(lab.consoleText.matchAll(/^LAB-RESULT (\{.*\})\r?$/gm), (m) => m[1]!), results);
  const { marks } = lab;
  console.log(
    `FIGURE xen-arm (emulated: qemu-system-arm TCG, Cortex-A15, 2 vCPUs; not comparable with hardware): Xen loads dom0 ${s(marks['xen'])}, ` +
      `dom0 userspace ${s(marks['dom0Init'])}, driver starts ${s(marks['dom0Userspace'])}, toolstack up ${s(marks['toolstack'])}, ` +
      `daemon ready ${s(marks['daemon'])}, whole run ${s(marks['total'])}`,
  );
  const boot = results.get('boot');
  if (boot) {
    console.log(
      `FIGURE xen-arm xl create -> first HTTP byte of the Arm domU: ${s(boot['createToFirstByteMs'] as number | null)}; ` +
        `cold dig answered in ${s(boot['answeredMs'] as number)}, dig -> first byte ${s(boot['digToFirstByteMs'] as number | null)}`,
    );
  }
}, LAB_TIMEOUT_MS + 20_000);

afterAll(() => {
  killEmulator();
  if (out) rmSync(out, { recursive: true, force: true });
});

/** What dom0 said, for a failing assertion: the scenario's record, the daemon log tail and the console tail. */
function context(scenario: string): string {
  // The daemon log and driver log reach /out only at the end (best effort).
  const log = out && existsSync(join(out, 'daemon-a.log')) ? readFileSync(join(out, 'daemon-a.log'), 'latin1').slice(-3000) : '';
  const driver = out && existsSync(join(out, 'driver.log')) ? readFileSync(join(out, 'driver.log'), 'latin1').slice(-2000) : '';
  return `${scenario}: ${JSON.stringify(results.get(scenario) ?? null).slice(0, 3000)}\ndaemon log:\n${log}\ndriver log:\n${driver}\nconsole:\n${lab.consoleText.slice(-3000)}`;
}

const get = (scenario: string): Result => scenarioResult(results, scenario, context(scenario));

const PAGE = 'jitsu guest www\n';
const GUEST_IP = '10.77.6.10';

describe.skipIf(missing.length > 0)(`xl backend on a real Xen 4.17 hypervisor on armhf (emulated lab) ${why}`, () => {
  it('Xen boots the armhf dom0 (the board root, in RAM), its toolstack runs, the daemon starts, and the lab powers off when done', () => {
    expect(lab.consoleText).toMatch(/\(XEN\) (\[[ 0-9.]+\] )?Xen version 4\.17/);
    expect(lab.consoleText, lab.consoleText.slice(-3000)).toMatch(/LAB: xen toolstack up .*hypervisor=xen version=4\.17/);
    expect(get('daemon')['ok'], context('daemon')).toBe(true);
    expect(get('daemon')['arch']).toBe('arm');
    expect(get('done')['xlCalls']).toBeGreaterThan(0);
    expect(lab.consoleText).toMatch(/Hardware Dom0 halted/);
  });

  it('a dig makes the daemon run one xl create; the answer is the domU address and curl from dom0 gets its page', () => {
    const r = get('boot');
    expect(r['dig'] as Dig, context('boot')).toMatchObject({ status: 'NOERROR', answer: GUEST_IP });
    expect(r['creates'], context('boot')).toBe(1);
    expect((r['curl'] as Curl).body, context('boot')).toBe(PAGE);
    expect((r['domain'] as { flags: string } | null)?.flags, context('boot')).not.toMatch(/[pscd]/);
  });

  it('idle stop with -m destroy runs xl destroy and leaves no domain', () => {
    const r = get('idle-destroy');
    expect(r['gone'], context('idle-destroy')).toBe(true);
    expect(r['destroys']).toBeGreaterThanOrEqual(1);
    expect(r['stoppingLogged']).toBe(true);
    expect(r['leftover']).toEqual([]);
  });

  it('the next dig creates it again; SIGTERM of the daemon destroys it and the daemon exits, leaving nothing', () => {
    const r = get('sigterm');
    expect(r['dig'] as Dig, context('sigterm')).toMatchObject({ status: 'NOERROR', answer: GUEST_IP });
    expect((r['curl'] as Curl).body, context('sigterm')).toBe(PAGE);
    expect(r['createsAfter']).toBe((r['createsBefore'] as number) + 1);
    expect(r['runningBefore'], context('sigterm')).not.toBeNull();
    expect(r['exit'], context('sigterm')).not.toBeNull();
    expect(r['leftover'], context('sigterm')).toEqual([]);
  });
});
