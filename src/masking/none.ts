import type { MaskStrategy } from './strategy.js';

/** No masking: the answer waits until the service is ready; Synjitsu only summons on a SYN. */
export const none = {
  name: 'none',
  summary: 'answer DNS after the service is ready',
  requires: undefined,
  delaysAnswer: true,
  answersBeforeReady: false,
  onPacketPath: false,
  holdsConnections: false,
  // Watched (when Synjitsu runs for other services): cached-DNS clients still reach us and summon it.
  answersArp: { watched: true, booting: false },
  linkUp: 'start',
  clientSegments: 'none',
} as const satisfies MaskStrategy<'none'>;
