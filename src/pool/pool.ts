import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { BackendHandle, ExitReport, RuntimeState, ServiceSpec, StopMode } from '../backends/backend.js';
import { JitsuError } from '../errors.js';
import type { Logger } from '../observe/log.js';
import type { BootHooks } from '../services/calls.js';
import type { BootCall, PoolOp, PoolRequest, PoolResponse, PoolResults } from './protocol.js';
import { fromWireError, isBootAnswer, isBootStarted, isPoolResponse, isWorkerLoaded } from './protocol.js';

/** How long close() waits for threads still loading their modules (a busy 2-core box takes ~0.5 s). */
export const LOAD_WAIT_MS = 10_000;

export interface BackendPoolOptions {
  minThreads?: number;
  maxThreads?: number;
  logger: Logger;
  /** Override the compiled worker module (tests). */
  workerFile?: string;
}

/**
 * The worker is always the compiled JS in dist/: next to this module when it runs from
 * dist/src/pool/, else (this module loaded from src/ by vitest) the mirror path under dist/.
 */
export function defaultWorkerFile(): string {
  const here = new URL(import.meta.url);
  const url = here.pathname.endsWith('.ts') ? new URL('../../dist/src/pool/worker.js', here) : new URL('./worker.js', here);
  return fileURLToPath(url);
}

/** Backend calls off the main thread. Each call is bounded inside the worker by its timeout. */
export class BackendPool {
  private readonly piscina: Piscina;
  private readonly logger: Logger;
  private closed = false;
  /** Threads that have loaded their modules (protocol.ts WorkerLoaded); only those may be ended. */
  private readonly loadedThreads = new Set<number>();
  private readonly loadWaiters = new Set<() => void>();
  /** Boots in flight, by bootId: who hears of the handle their start() returned. */
  private readonly boots = new Map<number, (handle: BackendHandle) => void>();
  private nextBootId = 1;
  /** Each loaded thread's boot line (protocol.ts BootCall), and the boots out on them. */
  private readonly bootLines = new Map<number, MessagePort>();
  private readonly bootCalls = new Map<number, { thread: number; settle: (res: unknown) => void }>();
  private readonly drainWaiters = new Set<() => void>();
  private nextCallId = 1;
  private nextLine = 0;

  constructor(opts: BackendPoolOptions) {
    const filename = opts.workerFile ?? defaultWorkerFile();
    if (!existsSync(filename)) {
      throw new JitsuError('NOT_BUILT', `backend worker ${filename} is missing: build it with \`npm run build:ts\``, { workerFile: filename });
    }
    this.logger = opts.logger;
    const minThreads = opts.minThreads ?? 1;
    this.piscina = new Piscina({
      filename,
      minThreads,
      maxThreads: Math.max(minThreads, opts.maxThreads ?? 2),
      // Workers must live as long as the pool: a thread reaps the children it spawned, so a
      // recycled thread would leave zombies. 'async' atomics keep an idle worker's event loop
      // running (timers, child exits) instead of blocking it in Atomics.wait.
      // The largest delay a Node timer takes (2^31-1 ms, ~24.8 days); beyond it Node warns and fires after 1 ms.
      idleTimeout: 2 ** 31 - 1,
      atomics: 'async',
      // Backend calls mostly wait (for a child, a /proc poll, a VM's first frame): one worker runs
      // many at once, so a slow ready() never holds back another service's boot. The queue bound
      // only guards memory; 'auto' (maxThreads²) made concurrent summons fail.
      concurrentTasksPerWorker: 64,
      maxQueue: 4096,
    });
    this.piscina.on('message', (message: unknown) => {
      if (isBootStarted(message)) {
        this.boots.get(message.bootStarted)?.(message.handle);
        return;
      }
      if (!isWorkerLoaded(message)) return;
      this.loadedThreads.add(message.workerLoaded);
      if (message.boots) this.addBootLine(message.workerLoaded, message.boots);
      for (const check of [...this.loadWaiters]) check();
    });
  }

  /** Resolves once every thread has loaded its modules, or after `timeoutMs`; true if all had. */
  loaded(timeoutMs: number): Promise<boolean> {
    const done = (): boolean => this.piscina.threads.every((t) => this.loadedThreads.has(t.threadId));
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (done()) finish(true);
      };
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        this.loadWaiters.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(done()), timeoutMs);
      this.loadWaiters.add(check);
    });
  }

  private async call<Op extends PoolOp>(req: PoolRequest & { op: Op }, hooks: Partial<BootHooks> = {}): Promise<PoolResults[Op]> {
    if (this.closed) throw new JitsuError('ABORTED', `backend pool is closed (${req.op} ${req.spec.service})`, { service: req.spec.service });
    const t0 = performance.now();
    const res: unknown = req.op === 'boot' ? await this.sendBoot(req as PoolRequest & { op: 'boot' }) : await this.piscina.run(req);
    if (!isPoolResponse(res)) {
      throw new JitsuError('WORKER_FAILED', `backend worker returned a malformed answer to ${req.op} ${req.spec.service} (a bug: please report it)`, { service: req.spec.service, op: req.op });
    }
    if (this.logger.enabled('debug')) {
      this.logger.debug('backend call', { op: req.op, service: req.spec.service, ms: Number((performance.now() - t0).toFixed(2)), ok: res.ok });
    }
    if (!res.ok) {
      if (res.started) hooks.onStarted?.(res.started);
      throw fromWireError(res.error);
    }
    if (res.calledAt !== undefined) hooks.onCalled?.(res.calledAt);
    if (res.settledAt !== undefined) hooks.onSettled?.(res.settledAt);
    return res.value as PoolResults[Op];
  }

  private addBootLine(thread: number, line: MessagePort): void {
    this.bootLines.set(thread, line);
    line.on('message', (answer: unknown) => {
      if (isBootAnswer(answer)) this.settleBoot(answer.callId, answer.res);
    });
    // The thread ended (crashed, or the pool closed): its boots get an answer, never silence.
    line.on('close', () => {
      this.bootLines.delete(thread);
      for (const [callId, call] of this.bootCalls) {
        if (call.thread !== thread) continue;
        this.settleBoot(callId, {
          ok: false,
          error: { code: 'WORKER_FAILED', message: `backend worker thread ${thread} ended during a boot`, details: { thread } },
        } satisfies PoolResponse);
      }
    });
    line.unref();
  }

  private settleBoot(callId: number, res: unknown): void {
    const call = this.bootCalls.get(callId);
    if (!call) return;
    this.bootCalls.delete(callId);
    call.settle(res);
    if (this.bootCalls.size === 0) for (const done of [...this.drainWaiters]) done();
  }

  /** A boot on a thread's own line, in turn; through piscina while no thread has offered one. */
  private sendBoot(req: PoolRequest & { op: 'boot' }): Promise<unknown> {
    const lines = [...this.bootLines];
    if (lines.length === 0) return this.piscina.run(req);
    const [thread, line] = lines[this.nextLine++ % lines.length]!;
    const callId = this.nextCallId++;
    return new Promise((settle, reject) => {
      this.bootCalls.set(callId, { thread, settle });
      try {
        line.postMessage({ callId, req } satisfies BootCall);
      } catch (err) {
        this.bootCalls.delete(callId);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Resolves once no boot is out on a line. */
  private bootsDrained(): Promise<void> {
    if (this.bootCalls.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.drainWaiters.delete(done);
        resolve();
      };
      this.drainWaiters.add(done);
    });
  }

  start(spec: ServiceSpec, timeoutMs: number, onCalled?: (epochMs: number) => void): Promise<BackendHandle> {
    return this.call({ op: 'start', spec, timeoutMs }, { onCalled });
  }

  async boot(spec: ServiceSpec, timeoutMs: number, hooks: BootHooks, suspended?: BackendHandle): Promise<BackendHandle> {
    const bootId = this.nextBootId++;
    let told = false;
    const started = (handle: BackendHandle): void => {
      if (told) return;
      told = true;
      hooks.onStarted(handle);
    };
    this.boots.set(bootId, started);
    try {
      const handle = await this.call({ op: 'boot', spec, timeoutMs, bootId, ...(suspended ? { suspended } : {}) }, { ...hooks, onStarted: started });
      started(handle);
      return handle;
    } finally {
      this.boots.delete(bootId);
    }
  }

  async prepare(spec: ServiceSpec, timeoutMs: number): Promise<BackendHandle | undefined> {
    return (await this.call({ op: 'prepare', spec, timeoutMs })) ?? undefined;
  }

  async ready(handle: BackendHandle, spec: ServiceSpec, timeoutMs: number, onSettled?: (epochMs: number) => void): Promise<void> {
    await this.call({ op: 'ready', handle, spec, timeoutMs }, { onSettled });
  }

  async stop(handle: BackendHandle, spec: ServiceSpec, mode: StopMode, timeoutMs: number): Promise<void> {
    await this.call({ op: 'stop', handle, spec, mode, timeoutMs });
  }

  async resume(handle: BackendHandle, spec: ServiceSpec, timeoutMs: number): Promise<BackendHandle | undefined> {
    return (await this.call({ op: 'resume', handle, spec, timeoutMs })) ?? undefined;
  }

  state(handle: BackendHandle, spec: ServiceSpec): Promise<RuntimeState> {
    return this.call({ op: 'state', handle, spec });
  }

  exitReport(handle: BackendHandle, spec: ServiceSpec): Promise<ExitReport> {
    return this.call({ op: 'exitReport', handle, spec });
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  /**
   * Waits a little for calls in flight, then ends the workers (services they started keep running).
   * A call still waiting after the grace (a ready() poll of a service already destroyed) is cut off.
   * A thread still loading its modules (a daemon stopped right after it started) is waited for
   * first: ending it mid-load can abort the process instead of letting it exit cleanly.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!(await this.loaded(LOAD_WAIT_MS))) {
      this.logger.warn('backend workers still loading after the wait: ending them anyway', { wait_ms: LOAD_WAIT_MS });
    }
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      // Boots on the lines first: piscina ends its threads once its own queue is empty.
      this.bootsDrained()
        .then(() => this.piscina.close())
        .then(
          () => true,
          () => false,
        ),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (!finished) await this.piscina.destroy();
  }
}
