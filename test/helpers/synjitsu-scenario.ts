/**
 * One cold-boot scenario on a SynjitsuRig: the client connects to a stopped service; summon-on-SYN
 * starts a simulated boot of `bootMs`; when it ends the VM link comes up and the masker is told
 * ready() (or failed()). With `mask: 'off'` no masker runs at all: the unmasked baseline.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { BackendHandle, MaskMode } from '../../src/backends/backend.js';
import { nativeAvailable } from '../../src/native/index.js';
import { createLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';
import type { MaskTarget } from '../../src/synjitsu/masker.js';
import { createSynjitsu, type Synjitsu, type SynjitsuOptions } from '../../src/synjitsu/synjitsu.js';
import { rigUnavailable, type SynjitsuRig } from './synjitsu-rig.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Why a masking suite cannot run here (no root, missing tools, addon not built), else undefined. */
export function maskingUnavailable(): string | undefined {
  return rigUnavailable() ?? (nativeAvailable() ? undefined : 'native addon not built (npx node-gyp rebuild)');
}

export interface MaskingSuite {
  rig: SynjitsuRig;
  /** The test's masked service: closed before the next test (and after the suite), even on failure. */
  svc: Boot | undefined;
  /** Records a test's masked service as `svc`; resolves to it. */
  hold(boot: Promise<Boot>): Promise<Boot>;
}

/** Registers a suite's hooks: one rig (set up once, reset before each test), one masker per test. */
export function maskingSuite(rig: SynjitsuRig, setup?: () => Promise<unknown>): MaskingSuite {
  const suite: MaskingSuite = {
    rig,
    svc: undefined,
    hold: async (boot) => (suite.svc = await boot),
  };
  beforeAll(async () => {
    await rig.setup();
    await rig.startServer();
    await setup?.();
  });
  afterAll(async () => {
    await suite.svc?.masker.close();
    await rig.cleanup();
  });
  beforeEach(async () => {
    await suite.svc?.masker.close();
    suite.svc = undefined;
    await rig.reset();
  });
  return suite;
}

export interface Boot {
  target: MaskTarget;
  masker: Synjitsu;
  metrics: MetricsRegistry;
  /** Resolves when the simulated boot has ended and ready()/failed() returned. */
  done: () => Promise<void>;
  summons: number;
  /** Debug log lines of this masker (printed by tests when an assertion fails). */
  log: string[];
  /** Wall-clock ms (performance.timeOrigin + now) when ready() was called. */
  readyCalledAt: number;
}

export function handleFor(rig: SynjitsuRig): BackendHandle {
  return { backend: 'process', service: 'web', link: rig.vmLink, mac: rig.vmMac, data: {} };
}

/** A masker on the rig's bridge whose summon-on-SYN runs a simulated boot of bootMs. */
export async function maskedService(
  rig: SynjitsuRig,
  mask: MaskMode,
  bootMs: number,
  opts: {
    fail?: boolean;
    limits?: SynjitsuOptions['limits'];
    ring?: SynjitsuOptions['ring'];
    relay?: SynjitsuOptions['relay'];
    hostClients?: boolean;
    /** Runs (not awaited) between the link coming up and ready(): e.g. a service that listens late. */
    onLinkUp?: () => unknown;
  } = {},
): Promise<Boot> {
  const metrics = new MetricsRegistry();
  const target: MaskTarget = { service: 'web', ip: rig.vmIp, mask, mac: rig.vmMac };
  let boot: Promise<void> = Promise.resolve();
  const state: Boot = {
    target,
    metrics,
    summons: 0,
    log: [],
    readyCalledAt: 0,
    masker: undefined as unknown as Synjitsu,
    done: () => boot,
  };
  state.masker = await createSynjitsu({
    iface: rig.bridge,
    logger: createLogger('debug', (line) => {
      if (state.log.length < 2000) state.log.push(line);
    }),
    metrics,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.ring ? { ring: opts.ring } : {}),
    ...(opts.relay ? { relay: opts.relay } : {}),
    hostClients: opts.hostClients ?? true,
    onSummon: () => {
      state.summons++;
      state.masker.booting(target);
      boot = (async () => {
        await sleep(bootMs);
        if (opts.fail) {
          state.masker.failed(target, 'simulated boot failure');
          return;
        }
        await rig.linkUp();
        void opts.onLinkUp?.();
        state.log.push(`ts=${new Date().toISOString()} test: link up, calling ready()`);
        state.readyCalledAt = performance.timeOrigin + performance.now();
        await state.masker.ready(target, handleFor(rig));
      })();
    },
  });
  state.masker.configure([target]);
  return state;
}

export function metric(metrics: MetricsRegistry, name: string, labels = ''): number {
  const text = metrics.render();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels && !(m[2] ?? '').includes(labels)) continue;
    total += Number(m[3]);
  }
  return total;
}
