import type { MaskStrategy } from './strategy.js';

/** Synjitsu answers ARP for the booting IP, captures SYNs and replays them once the guest is up. */
export const park = {
  name: 'park',
  summary: "Synjitsu parks the clients' SYNs and replays them once the guest is up (boots shorter than the 1 s SYN RTO)",
  requires: 'hold',
  delaysAnswer: false,
  answersBeforeReady: true,
  onPacketPath: true,
  holdsConnections: true,
  answersArp: { watched: true, booting: true },
  linkUp: 'ready',
  clientSegments: 'park',
} as const satisfies MaskStrategy<'park'>;
