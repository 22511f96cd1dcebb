/**
 * What one boot-masking strategy (`mask=`) means to the rest of the daemon. The lifecycle, config
 * validation, the backends and Synjitsu ask these questions instead of comparing strategy names,
 * so a new strategy is one module (beside the four here), one line in registry.ts and its tests.
 */

/** What a backend must be able to do for a strategy to apply to its services (its `masking` capability). */
export type MaskRequirement =
  /** Bind the service's listening sockets before the program starts (socket activation). */
  | 'prebind'
  /** Keep the service off the bridge until ready(), so the packet path speaks for its IP. */
  | 'hold';

/** Synjitsu's handling of a client's segments while the service boots. */
export type SegmentHandling = 'park' | 'handshake' | 'none';

export interface MaskStrategy<Name extends string = string> {
  readonly name: Name;
  /** One line for `--help` and the docs. */
  readonly summary: string;
  readonly requires: MaskRequirement | undefined;
  /** A DNS answer may leave before the service is ready: someone holds its clients meanwhile. */
  readonly answersBeforeReady: boolean;
  /**
   * A cold start's answer leaves no earlier than response_delay (-d) after the boot began: nothing
   * holds early clients, so the original's delay still protects them.
   */
  readonly delaysAnswer: boolean;
  /** Synjitsu watches the service's IP (ARP, summon-on-SYN) and gets the lifecycle's transitions. */
  readonly onPacketPath: boolean;
  /** Synjitsu keeps client connections (parked SYNs, completed handshakes) during a boot. */
  readonly holdsConnections: boolean;
  /** In which of Synjitsu's phases ARP for the service's IP is answered (with the guest's MAC). */
  readonly answersArp: { readonly watched: boolean; readonly booting: boolean };
  /** When the service's own link comes up on the bridge: at start, or as the last step of ready(). */
  readonly linkUp: 'start' | 'ready';
  readonly clientSegments: SegmentHandling;
  /** A problem with the service's keys that makes this strategy impossible, as a fix-naming message. */
  check?(options: Readonly<Record<string, readonly string[]>>, service: string): string | undefined;
}
