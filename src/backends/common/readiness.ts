/**
 * "The guest's network is up" without a raw socket: every frame the guest sends arrives on its
 * host-side link (tap or libvirt vnet) as a *received* packet, so the link's rx_packets counter
 * moving past its value at start is the guest's first frame. Polling a sysfs counter costs one
 * pread per tick. Or, when the service names `ready=tcp:PORT`, a TCP connect from the host.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { connect } from 'node:net';
import { abortableSleep } from './sleep.js';

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
