import type { BackendHandle, MaskMode } from '../backends/backend.js';

/**
 * Who translates a handed-over connection once the guest holds everything we buffered: a tc program
 * on the guest's link (src/synjitsu/kernel-relay.ts), or the daemon, segment by segment.
 */
export const RELAY_MODES = ['kernel', 'daemon'] as const;
export type RelayMode = (typeof RELAY_MODES)[number];

/** What the masking path needs to know about one service. */
export interface MaskTarget {
  service: string;
  ip: string;
  mask: MaskMode;
  /** MAC the service will use on the bridge; ARP answers for a booting service carry it. */
  mac: string;
}

/**
 * The contract between the service lifecycle and Synjitsu. The lifecycle calls these on every
 * transition; Synjitsu decides what to do by the target's `mask`. Calls never throw and never block
 * the caller: failures are logged and counted inside.
 */
export interface BootMasker {
  /** The set of services to watch (ARP for and summon-on-SYN), replaced whole on (re)configuration. */
  configure(targets: readonly MaskTarget[]): void;
  /** A boot started: begin answering ARP and capturing SYNs for the target's IP. */
  booting(target: MaskTarget): void;
  /** The service's network is up: hand over parked/buffered connections, then stop masking its IP. */
  ready(target: MaskTarget, handle: BackendHandle): Promise<void>;
  /** The boot failed: reset every connection held for it (RST), drop parked SYNs. */
  failed(target: MaskTarget, reason: string): void;
  /** The service was stopped: its IP is watched again for summon-on-SYN. */
  stopped(target: MaskTarget): void;
  close(): Promise<void>;
}

/** Called by Synjitsu when a SYN reaches a stopped service's IP (clients cache DNS answers). */
export type SummonOnSyn = (service: string) => void;

/** The masker used when `--synjitsu` is not given: every call is a no-op by design. */
export const noMasker: BootMasker = {
  configure: () => undefined,
  booting: () => undefined,
  ready: async () => undefined,
  failed: () => undefined,
  stopped: () => undefined,
  close: async () => undefined,
};
