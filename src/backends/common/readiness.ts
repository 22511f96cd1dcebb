/**
 * Waiting for a service to be up, shared by the backends: the polling schedule their wait loops run
 * on, the first frame on a link, and a TCP connect probe.
 *
 * "The guest's network is up" without a raw socket: every frame the guest sends arrives on its
 * host-side link (tap, libvirt vnet, Xen vif) as a *received* packet, so the link's rx_packets
 * counter moving past its value at start is the guest's first frame. Polling a sysfs counter costs
 * one pread per tick. Or, when the service names `ready=tcp:PORT`, a TCP connect from the host.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { connect } from 'node:net';
import { abortableSleep } from './sleep.js';

/**
 * When a wait loop looks again: first `spins` turns of the event loop (a check that comes true
 * within a few ms is seen at once; a timer of "1 ms" is several ms on a busy box), then timers from
 * `firstMs`, doubling up to `maxMs`. A fixed interval is `firstMs` = `maxMs`.
 */
export interface PollSchedule {
  spins?: number;
  firstMs: number;
  maxMs: number;
}

/**
 * Event-loop turns a readiness wait spends checking before timers take over (~a few ms of /proc
 * reads): a fast program listens within a millisecond or two of its start, sooner than any timer.
 */
export const READY_SPINS = 10;

/**
 * The pauses of one wait loop on `schedule`: each call resolves after the next one. With `signal`,
 * a pause rejects (with the signal's reason) once it aborts; `wait` replaces the timer (for example
 * one that an event cuts short).
 */
export function pollPacer(schedule: PollSchedule, signal?: AbortSignal, wait?: (ms: number) => Promise<void>): () => Promise<void> {
  const timer = wait ?? (signal ? (ms: number) => abortableSleep(ms, signal) : (ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let turns = 0;
  let delay = schedule.firstMs;
  return () => {
    if (turns < (schedule.spins ?? 0)) {
      turns++;
      return new Promise<void>((resolve, reject) => (signal?.aborted ? reject(signal.reason) : setImmediate(resolve)));
    }
    const ms = delay;
    delay = Math.min(delay * 2, schedule.maxMs);
    return timer(ms);
  };
}

/**
 * Check `done` on `schedule` until it holds (true), or `ms` have passed or `signal` aborted (false).
 * The signal is only looked at between checks: the caller decides what an abort means.
 */
export async function pollUntil(done: () => boolean, ms: number, schedule: PollSchedule, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + ms;
  const pause = pollPacer(schedule);
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await pause();
  }
}

const counterBuf = Buffer.alloc(32);

/** Guest-to-host frames seen on a host link, or undefined when the link is gone. */
export function rxPackets(link: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(`/sys/class/net/${link}/statistics/rx_packets`, 'r');
  } catch {
    return undefined;
  }
  try {
    const n = readSync(fd, counterBuf, 0, counterBuf.length, 0);
    return Number(counterBuf.toString('ascii', 0, n).trim());
  } finally {
    closeSync(fd);
  }
}

export interface PollHooks {
  /** Called every ~100 ms; throw to stop waiting (e.g. the VM process died). */
  check?: () => void;
  intervalMs?: number;
}

/** Resolves once `link` has received more than `baseline` packets. */
export async function waitFirstFrame(link: string, baseline: number, signal: AbortSignal, hooks: PollHooks = {}): Promise<void> {
  const every = hooks.intervalMs ?? 2;
  let sinceCheck = 0;
  const fd = openSync(`/sys/class/net/${link}/statistics/rx_packets`, 'r');
  try {
    for (;;) {
      const n = readSync(fd, counterBuf, 0, counterBuf.length, 0);
      if (Number(counterBuf.toString('ascii', 0, n).trim()) > baseline) return;
      sinceCheck += every;
      if (sinceCheck >= 100) {
        sinceCheck = 0;
        hooks.check?.();
      }
      await abortableSleep(every, signal);
    }
  } finally {
    closeSync(fd);
  }
}

/** One TCP connect attempt, bounded by `timeoutMs`; true when the port accepted. */
export function tcpConnects(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Resolves once host:port accepts a TCP connection. */
export async function waitTcp(host: string, port: number, signal: AbortSignal, hooks: PollHooks = {}): Promise<void> {
  let sinceCheck = 0;
  for (;;) {
    if (signal.aborted) throw signal.reason;
    if (await tcpConnects(host, port, 250)) return;
    sinceCheck += 1;
    if (sinceCheck >= 5) {
      sinceCheck = 0;
      hooks.check?.();
    }
    await abortableSleep(hooks.intervalMs ?? 20, signal);
  }
}
