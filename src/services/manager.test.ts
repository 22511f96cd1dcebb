import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../backends/backend.js';
import { createFakeBackend, type FakeBackend } from '../backends/fake/index.js';
import { validateConfig } from '../config/validate.js';
import { JitsuError } from '../errors.js';
import { parseServiceArg } from '../config/service-arg.js';
import { silentLogger } from '../observe/log.js';
import { MetricsRegistry } from '../observe/metrics.js';
import { StateStore } from '../state/store.js';
import type { BootMasker, MaskTarget } from '../synjitsu/masker.js';
import { directCalls, type BackendCalls } from './calls.js';
import { ServiceManager } from './manager.js';
import { buildSpec } from './spec.js';
import { manualExitWatcher, type ManualExitWatcher } from '../supervise/testing.js';

function recordingMasker(events: string[]): BootMasker {
  return {
    configure: () => undefined,
    booting: (t: MaskTarget) => events.push(`booting ${t.service}`),
    ready: async (t: MaskTarget) => void events.push(`ready ${t.service}`),
    failed: (t: MaskTarget, reason: string) => events.push(`failed ${t.service} ${reason}`),
    stopped: (t: MaskTarget) => events.push(`stopped ${t.service}`),
    close: async () => undefined,
  };
}

describe('ServiceManager lifecycle', () => {
  let dir: string;
  let fake: FakeBackend;
  let clock: number;
  let events: string[];

  /** The managers a test made: stopped after it, so none of them writes into the next test's time. */
  let made: { mgr: ServiceManager; store: StateStore }[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'jitsu-mgr-'));
    fake = createFakeBackend();
    clock = 0;
    events = [];
    made = [];
  });
  afterEach(async () => {
    for (const { mgr, store } of made) {
      await mgr.stopAll().catch(() => undefined);
      await store.flush();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** Wait for a condition the lifecycle reaches asynchronously, instead of a fixed sleep. */
  const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  function manager(
    services: string[],
    flags: Record<string, string> = {},
    wrap: { backend?: Backend; calls?: (inner: BackendCalls) => BackendCalls } = {},
  ): { mgr: ServiceManager; store: StateStore; exits: ManualExitWatcher } {
    const exits = manualExitWatcher();
    // This test's backend: a manager left over from an earlier test must not reach the next one's.
    const backend = wrap.backend ?? fake;
    const raw = { flags: new Map(Object.entries({ state: dir, delay: '0', ...flags }).map(([k, v]) => [k, [v]])), services: services.map(parseServiceArg) };
    const config = validateConfig(raw, { defaultForwarders: () => [], backend: () => backend });
    const store = new StateStore(dir);
    const mgr = new ServiceManager(config, {
      specs: config.services.map((s) => buildSpec(s, config)),
      calls: (wrap.calls ?? ((c) => c))(directCalls(() => backend)),
      masker: recordingMasker(events),
      store,
      logger: silentLogger,
      metrics: new MetricsRegistry(),
      exitWatcher: exits.watcher,
      backend: () => backend,
      now: () => clock,
    });
    made.push({ mgr, store });
    return { mgr, store, exits };
  }

  it('boots once however many queries race, and answers all of them', async () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    const answer = mgr.lookup('web.jitsu.test')!;
    const results = Array.from({ length: 50 }, () => answer.ensureUp());
    expect(results.every((r) => r instanceof Promise)).toBe(true);
    await Promise.all(results);
    expect(fake.calls.filter((c) => c.startsWith('start'))).toEqual(['start web.jitsu.test']);
    expect(answer.ensureUp()).toBe(true);
    expect(mgr.runtime('web.jitsu.test')!.status()).toMatchObject({ state: 'ready', bootCount: 1 });
  });

  it('answers at once while masked, and tells the masker about each step', async () => {
    const { mgr } = manager(['dns=vm.jitsu.test,ip=10.0.0.6,mask=handshake']);
    expect(mgr.lookup('vm.jitsu.test')!.ensureUp()).toBe(true);
    expect(mgr.runtime('vm.jitsu.test')!.phase).toBe('booting');
    expect(events).toEqual(['booting vm.jitsu.test']);
    await until(() => events.length === 2);
    expect(events).toEqual(['booting vm.jitsu.test', 'ready vm.jitsu.test']);
    expect(mgr.runtime('vm.jitsu.test')!.phase).toBe('ready');
  });

  it('fails every waiter with the cause, returns to stopped, and retries on the next query', async () => {
    const { mgr } = manager(['dns=bad.jitsu.test,ip=10.0.0.7']);
    fake.failNext = 1;
    const answer = mgr.lookup('bad.jitsu.test')!;
    const waiters = [answer.ensureUp(), answer.ensureUp()];
    for (const w of waiters) await expect(w).rejects.toMatchObject({ code: 'BOOT_FAILED' });
    const status = mgr.runtime('bad.jitsu.test')!.status();
    expect(status).toMatchObject({ state: 'stopped', bootFailures: 1, lastError: 'bad.jitsu.test exited with status 1' });
    await answer.ensureUp();
    expect(mgr.runtime('bad.jitsu.test')!.phase).toBe('ready');
    expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(2);
  });

  it('resets masked connections when a masked boot fails', async () => {
    const { mgr } = manager(['dns=vm.jitsu.test,ip=10.0.0.6,mask=park']);
    fake.failNext = 1;
    expect(mgr.lookup('vm.jitsu.test')!.ensureUp()).toBe(true);
    await until(() => events.length === 2);
    expect(events).toEqual(['booting vm.jitsu.test', 'failed vm.jitsu.test vm.jitsu.test exited with status 1']);
  });

  it('times out a boot that takes longer than --boot-timeout', async () => {
    const { mgr } = manager(['dns=slow.jitsu.test,ip=10.0.0.8'], { 'boot-timeout': '0.05' });
    fake.bootMs = 500;
    await expect(mgr.lookup('slow.jitsu.test')!.ensureUp()).rejects.toMatchObject({ code: 'BOOT_TIMEOUT' });
    expect(mgr.runtime('slow.jitsu.test')!.phase).toBe('stopped');
  });

  it('stops a service idle for the idle timeout, with the configured mode, and boots it again on demand', async () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5'], { ttl: '10', mode: 'shutdown' });
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    clock = 19_000;
    mgr.sweep();
    expect(mgr.runtime('web.jitsu.test')!.phase).toBe('ready'); // a stop would have begun synchronously
    clock = 20_001;
    mgr.sweep();
    await until(() => mgr.runtime('web.jitsu.test')!.phase === 'stopped');
    expect(fake.calls).toContain('stop web.jitsu.test shutdown');
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(2);
  });

  it('a boot longer than the idle timeout is not idle at once: the idle clock starts at ready', async () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5'], { ttl: '10', 'boot-timeout': '120' });
    const start = fake.start.bind(fake);
    fake.start = async (spec, signal) => {
      const handle = await start(spec, signal);
      clock = 60_000; // the boot took a minute of daemon time (found on Xen under emulation)
      return handle;
    };
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    clock = 60_001;
    mgr.sweep();
    expect(mgr.runtime('web.jitsu.test')!.phase).toBe('ready');
    clock = 80_001;
    mgr.sweep();
    await until(() => mgr.runtime('web.jitsu.test')!.phase === 'stopped');
  });

  it('resumes a suspended service instead of booting it again', async () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5'], { ttl: '1', mode: 'suspend' });
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    clock = 5_000;
    mgr.sweep();
    await until(() => mgr.runtime('web.jitsu.test')!.phase === 'stopped');
    expect(mgr.runtime('web.jitsu.test')!.status()).toMatchObject({ state: 'stopped', suspended: true });
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    expect(fake.calls.filter((c) => /^(start|resume)/.test(c))).toEqual(['start web.jitsu.test', 'resume web.jitsu.test']);
  });

  it('a hibernate stop is bounded by --boot-timeout (saving memory is as long a job as a boot), other stops by 15 s', async () => {
    const backend: Backend = { ...fake, capabilities: { ...fake.capabilities, stopModes: [...fake.capabilities.stopModes, 'hibernate'] } };
    const deadlines: string[] = [];
    const recording = (inner: BackendCalls): BackendCalls => ({
      ...inner,
      stop: (handle, spec, mode, ms) => (deadlines.push(`${mode} ${ms}`), inner.stop(handle, spec, mode, ms)),
    });
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5', 'dns=api.jitsu.test,ip=10.0.0.6,stop=destroy'], { ttl: '1', mode: 'hibernate', 'boot-timeout': '120' }, { backend, calls: recording });
    await Promise.all([mgr.lookup('web.jitsu.test')!.ensureUp(), mgr.lookup('api.jitsu.test')!.ensureUp()]);
    clock = 5_000;
    mgr.sweep();
    await until(() => mgr.runtime('web.jitsu.test')!.phase === 'stopped' && mgr.runtime('api.jitsu.test')!.phase === 'stopped');
    expect(deadlines.sort()).toEqual(['destroy 15000', 'hibernate 120000']);
    expect(mgr.runtime('web.jitsu.test')!.status()).toMatchObject({ suspended: true });
  });

  it('a failed stop of a service still running keeps it ready and retries after another idle period, not at every sweep', async () => {
    let stops = 0;
    const backend: Backend = {
      ...fake,
      stop: async () => {
        stops++;
        throw new JitsuError('STOP_FAILED', 'xl save failed: no space left on device');
      },
    };
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5'], { ttl: '1' }, { backend });
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    const web = mgr.runtime('web.jitsu.test')!;
    clock = 5_000;
    mgr.sweep();
    await until(() => stops === 1 && web.phase === 'ready');
    for (let i = 0; i < 3; i++) mgr.sweep();
    await new Promise((r) => setTimeout(r, 20));
    expect({ stops, phase: web.phase }).toEqual({ stops: 1, phase: 'ready' });
    clock = 10_000;
    mgr.sweep();
    await until(() => stops === 2 && web.phase === 'ready');
  });

  it('a query during a stop waits for the stop, then boots once', async () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5'], { ttl: '1' });
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    clock = 5_000;
    mgr.sweep();
    expect(mgr.runtime('web.jitsu.test')!.phase).toBe('stopping');
    await mgr.lookup('web.jitsu.test')!.ensureUp();
    expect(fake.calls.filter((c) => /^(start|stop)/.test(c))).toEqual(['start web.jitsu.test', 'stop web.jitsu.test destroy', 'start web.jitsu.test']);
  });

  it('persists handles and adopts running services after a restart without booting them', async () => {
    const first = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    await first.mgr.lookup('web.jitsu.test')!.ensureUp();
    await first.store.flush();
    const second = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    await second.mgr.adopt(await second.store.load());
    expect(second.mgr.runtime('web.jitsu.test')!.status()).toMatchObject({ state: 'ready', bootCount: 1 });
    expect(second.mgr.lookup('web.jitsu.test')!.ensureUp()).toBe(true);
    expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(1);
  });

  it('destroys a saved service whose state cannot be read, instead of booting a second copy beside it', async () => {
    const first = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    await first.mgr.lookup('web.jitsu.test')!.ensureUp();
    await first.store.flush();
    fake.running.set('web.jitsu.test', 'unknown');
    const second = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    await second.mgr.adopt(await second.store.load());
    expect(fake.calls).toContain('stop web.jitsu.test destroy');
    expect(second.mgr.runtime('web.jitsu.test')!.phase).toBe('stopped');
    expect(await second.store.load()).toEqual({});
  });

  it('tells Synjitsu that an adopted masked service is up, so it stops answering for it', async () => {
    const first = manager(['dns=vm.jitsu.test,ip=10.0.0.6,mask=handshake']);
    first.mgr.lookup('vm.jitsu.test')!.ensureUp();
    await until(() => first.mgr.runtime('vm.jitsu.test')!.phase === 'ready');
    await first.store.flush();
    events.length = 0;
    const second = manager(['dns=vm.jitsu.test,ip=10.0.0.6,mask=handshake']);
    await second.mgr.adopt(await second.store.load());
    expect(events).toEqual(['ready vm.jitsu.test']);
  });

  it('stops services a restarted daemon no longer has in its config', async () => {
    const first = manager(['dns=old.jitsu.test,ip=10.0.0.9']);
    await first.mgr.lookup('old.jitsu.test')!.ensureUp();
    await first.store.flush();
    const second = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    await second.mgr.adopt(await second.store.load());
    expect(fake.calls).toContain('stop old.jitsu.test destroy');
    expect(await second.store.load()).toEqual({});
  });

  it('starts no boot once the daemon is shutting down', async () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
    await mgr.stopAll();
    await expect(mgr.lookup('web.jitsu.test')!.ensureUp()).rejects.toMatchObject({ code: 'ABORTED' });
    expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(0);
  });

  describe('supervision', () => {
    it('sees a ready service die, logs and counts it, cleans up, and boots it again on the next query', async () => {
      const { mgr, exits, store } = manager(['dns=web.jitsu.test,ip=10.0.0.5,mask=handshake']);
      const runtime = mgr.runtime('web.jitsu.test')!;
      mgr.lookup('web.jitsu.test')!.ensureUp();
      await until(() => runtime.phase === 'ready');
      const pid = runtime.handle!.pid!;
      // Watched from the turn after the answers go out.
      await until(() => exits.watched().includes(pid));
      expect(exits.watched()).toEqual([pid]);
      exits.exit(pid);
      expect(runtime.phase).toBe('stopping'); // no longer answered as ready, at once
      await until(() => runtime.phase === 'stopped');
      expect(fake.calls).toContain('exitReport web.jitsu.test');
      expect(fake.calls.at(-1)).toBe('stop web.jitsu.test destroy');
      expect(events).toContain('stopped web.jitsu.test'); // Synjitsu resets what it relays
      expect(runtime.status()).toMatchObject({ state: 'stopped', exits: 1, lastExit: 'killed by SIGKILL', pid: null });
      expect(mgr.status()[0]!.lastError).toMatch(/exited after ready: killed by SIGKILL/);
      const metricsText = (mgr as unknown as { deps: { metrics: MetricsRegistry } }).deps.metrics.render();
      expect(metricsText).toMatch(/jitsu_service_exits_total\{service="web.jitsu.test",reason="killed"\} 1/);
      // restart=no: nothing until the next query, which boots it again.
      await new Promise((r) => setTimeout(r, 30));
      expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(1);
      mgr.lookup('web.jitsu.test')!.ensureUp();
      await until(() => runtime.phase === 'ready');
      expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(2);
      await store.flush();
    });

    it('queries during the cleanup after an exit share one boot (found by the fault soak)', async () => {
      const { mgr, exits, store } = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
      const runtime = mgr.runtime('web.jitsu.test')!;
      const answer = mgr.lookup('web.jitsu.test')!;
      await answer.ensureUp();
      await until(() => exits.watched().length === 1);
      fake.bootMs = 50;
      exits.exit(runtime.handle!.pid!);
      const during = answer.ensureUp(); // chained on the cleanup
      await until(() => fake.calls.includes('stop web.jitsu.test destroy'));
      await new Promise((r) => setImmediate(r));
      const after = answer.ensureUp(); // the cleanup is over, the boot is not
      await Promise.all([during, after]);
      expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(2);
      expect(runtime.phase).toBe('ready');
      await store.flush();
    });

    it('ignores the exit of a service it stopped itself', async () => {
      const { mgr, exits } = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
      const runtime = mgr.runtime('web.jitsu.test')!;
      await mgr.lookup('web.jitsu.test')!.ensureUp();
      const pid = runtime.handle!.pid!;
      await runtime.stop('destroy');
      expect(exits.watched()).toEqual([]);
      exits.exit(pid);
      expect(runtime.status()).toMatchObject({ state: 'stopped', exits: 0 });
    });

    it('restart=on-failure brings a crashed service back by itself, with backoff', async () => {
      const { mgr, exits } = manager(['dns=web.jitsu.test,ip=10.0.0.5,restart=on-failure,restart_sec=0.01']);
      const runtime = mgr.runtime('web.jitsu.test')!;
      await mgr.lookup('web.jitsu.test')!.ensureUp();
      exits.exit(runtime.handle!.pid!);
      await until(() => runtime.phase === 'ready' && fake.calls.filter((c) => c.startsWith('start')).length === 2);
      // A clean exit is no failure: on-failure leaves it stopped.
      fake.exitWith = { reason: 'exited', cause: 'exited with status 0', logTail: [] };
      exits.exit(runtime.handle!.pid!);
      await until(() => runtime.phase === 'stopped');
      await new Promise((r) => setTimeout(r, 50));
      expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(2);
    });

    it('puts a crash-looping service in failed for the cool-down: SERVFAIL at once, no boot, then boots again', async () => {
      const { mgr } = manager(['dns=bad.jitsu.test,ip=10.0.0.7,start_limit_burst=3,start_limit_interval=60,cooldown=30']);
      const runtime = mgr.runtime('bad.jitsu.test')!;
      fake.failNext = 3;
      for (let i = 0; i < 3; i++) await expect(mgr.lookup('bad.jitsu.test')!.ensureUp()).rejects.toMatchObject({ code: 'BOOT_FAILED' });
      expect(runtime.phase).toBe('failed');
      const status = runtime.status();
      expect(status.failedUntil).not.toBeNull();
      expect(Date.parse(status.failedUntil!) - Date.now()).toBeGreaterThan(25_000);
      await expect(mgr.lookup('bad.jitsu.test')!.ensureUp()).rejects.toMatchObject({ code: 'SERVICE_FAILED', message: expect.stringMatching(/crash loop.*exited with status 1/) });
      expect(fake.calls.filter((c) => c.startsWith('start'))).toHaveLength(3);
      clock += 30_000;
      await mgr.lookup('bad.jitsu.test')!.ensureUp();
      expect(runtime.phase).toBe('ready');
    });

    it('resets what Synjitsu took for a failed service on summon-on-SYN', async () => {
      const { mgr } = manager(['dns=vm.jitsu.test,ip=10.0.0.6,mask=handshake,start_limit_burst=1']);
      const runtime = mgr.runtime('vm.jitsu.test')!;
      fake.failNext = 1;
      mgr.summon('vm.jitsu.test');
      await until(() => runtime.phase === 'failed');
      events.length = 0;
      mgr.summon('vm.jitsu.test');
      await until(() => events.length > 0);
      expect(events[0]).toMatch(/^failed vm.jitsu.test .*crash loop/);
    });

    it('sees a poll-watched service gone on the next sweep', async () => {
      const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5']);
      const runtime = mgr.runtime('web.jitsu.test')!;
      await mgr.lookup('web.jitsu.test')!.ensureUp();
      fake.running.set('web.jitsu.test', 'stopped'); // destroyed behind our back
      mgr.sweep();
      await until(() => runtime.phase === 'stopped');
      expect(runtime.status().exits).toBe(1);
    });
  });

  describe('held ahead (Backend.prepare, e.g. precreate=on)', () => {
    // A name of its own per test: managers of earlier tests still reach `fake` (the variable) with theirs.
    let n = 0;
    let name = '';
    let WEB = '';
    /** Ends what a test left in flight (a prepare and its state write) before its dir is removed. */
    const settle = async (mgr: ServiceManager, store: StateStore): Promise<void> => {
      await mgr.stopAll();
      await store.flush();
    };
    beforeEach(() => {
      name = `held${++n}.jitsu.test`;
      WEB = `dns=${name},ip=10.0.0.5`;
    });

    it('prepares at daemon start, persists the standby, boots from it, and prepares the next one after an idle stop', async () => {
      fake.prepares = true;
      const { mgr, store } = manager([WEB], { ttl: '1' });
      await mgr.adopt({});
      await until(() => fake.held.has(name));
      await store.flush();
      const pid = fake.held.get(name)!.pid;
      expect((await store.load())[name]).toMatchObject({ standby: true, handle: { pid } });
      expect(mgr.runtime(name)!.status()).toMatchObject({ state: 'stopped', pid: null, standbyPid: pid });
      await mgr.lookup(name)!.ensureUp();
      expect(fake.calls.filter((c) => c.startsWith('start'))).toEqual([`start ${name} from ${pid}`]);
      expect(mgr.runtime(name)!.status()).toMatchObject({ state: 'ready', pid, standbyPid: null });
      clock = 5_000;
      mgr.sweep();
      await until(() => fake.held.has(name));
      expect(fake.held.get(name)!.pid).not.toBe(pid);
      await until(() => mgr.runtime(name)!.status().standbyPid === fake.held.get(name)!.pid);
      expect(fake.calls.filter((c) => c.startsWith('prepare'))).toEqual([`prepare ${name}`, `prepare ${name}`]);
      await settle(mgr, store);
    });

    it('a query while the standby is being made waits for it and starts it (one creation, not two)', async () => {
      fake.prepares = true;
      fake.prepareMs = 50;
      const { mgr, store } = manager([WEB]);
      await mgr.adopt({});
      expect(fake.held.has(name)).toBe(false); // still being made
      await mgr.lookup(name)!.ensureUp();
      expect(fake.calls.filter((c) => /^(prepare|start)/.test(c))).toEqual([`prepare ${name}`, expect.stringMatching(new RegExp(`^start ${name} from \\d+$`))]);
      await settle(mgr, store);
    });

    it('daemon shutdown destroys the standby and forgets it', async () => {
      fake.prepares = true;
      const { mgr, store } = manager([WEB]);
      await mgr.adopt({});
      await until(() => fake.held.has(name));
      const pid = fake.held.get(name)!.pid;
      await mgr.stopAll();
      await store.flush();
      expect(fake.calls).toContain(`stop ${name} standby ${pid} destroy`);
      expect(fake.held.size).toBe(0);
      expect(await store.load()).toEqual({});
    });

    it('a restarted daemon lets the backend keep the standby it finds (no second one)', async () => {
      fake.prepares = true;
      const first = manager([WEB]);
      await first.mgr.adopt({});
      await until(() => fake.held.has(name));
      await first.store.flush();
      const pid = fake.held.get(name)!.pid;
      const second = manager([WEB]);
      await second.mgr.adopt(await second.store.load());
      await until(() => fake.calls.includes(`prepare ${name} kept ${pid}`));
      expect(fake.calls.filter((c) => c === `prepare ${name}`)).toHaveLength(1);
      await second.mgr.lookup(name)!.ensureUp();
      expect(fake.calls).toContain(`start ${name} from ${pid}`);
      await settle(second.mgr, second.store);
    });

    it('a restarted daemon without the service destroys what was held for it', async () => {
      fake.prepares = true;
      const first = manager([`dns=old${n}.jitsu.test,ip=10.0.0.9`]);
      await first.mgr.adopt({});
      await until(() => fake.held.has(`old${n}.jitsu.test`));
      await first.store.flush();
      const pid = fake.held.get(`old${n}.jitsu.test`)!.pid;
      const second = manager([WEB]);
      await second.mgr.adopt(await second.store.load());
      expect(fake.calls).toContain(`stop old${n}.jitsu.test standby ${pid} destroy`);
      expect(fake.held.has(`old${n}.jitsu.test`)).toBe(false);
      await settle(second.mgr, second.store);
    });

    it('a reload that removes the service destroys its standby; one that adds a service prepares it', async () => {
      fake.prepares = true;
      const { mgr, store } = manager([`dns=old${n}.jitsu.test,ip=10.0.0.9`]);
      await mgr.adopt({});
      await until(() => fake.held.has(`old${n}.jitsu.test`));
      const raw = { flags: new Map([['state', [dir]], ['delay', ['0']]]), services: [parseServiceArg(WEB)] };
      const next = validateConfig(raw, { defaultForwarders: () => [], backend: () => fake });
      await mgr.reconfigure(next, next.services.map((s) => buildSpec(s, next)), async () => undefined);
      expect(fake.held.has(`old${n}.jitsu.test`)).toBe(false);
      await until(() => fake.held.has(name));
      await settle(mgr, store);
    });

    it('a backend that holds nothing costs no state write', async () => {
      const { mgr, store } = manager([WEB], { ttl: '1' });
      await mgr.adopt({});
      await mgr.lookup(name)!.ensureUp();
      clock = 5_000;
      mgr.sweep();
      await until(() => mgr.runtime(name)!.phase === 'stopped');
      await store.flush();
      expect(await store.load()).toEqual({});
      expect(fake.calls.filter((c) => c.startsWith('prepare'))).toEqual([]);
    });
  });

  it('finds the zone of names inside configured zones only', () => {
    const { mgr } = manager(['dns=web.jitsu.test,ip=10.0.0.5', 'dns=a.b.example.test,ip=10.0.1.5']);
    expect(mgr.zoneOf('web.jitsu.test')).toBe('jitsu.test');
    expect(mgr.zoneOf('nope.jitsu.test')).toBe('jitsu.test');
    expect(mgr.zoneOf('x.y.b.example.test')).toBe('b.example.test');
    expect(mgr.zoneOf('example.test')).toBeUndefined();
    expect(mgr.zoneOf('jitsu.test.evil')).toBeUndefined();
  });
});
