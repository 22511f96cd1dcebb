import type { MaskStrategy } from './strategy.js';

/** Synjitsu completes the handshake at once, buffers what clients send and hands over at ready. */
export const handshake = {
  name: 'handshake',
  summary: 'Synjitsu completes handshakes at once, buffers client data and hands each connection over at ready (boots of any length)',
  requires: 'hold',
  delaysAnswer: false,
  answersBeforeReady: true,
  onPacketPath: true,
  holdsConnections: true,
  answersArp: { watched: true, booting: true },
  linkUp: 'ready',
  clientSegments: 'handshake',
} as const satisfies MaskStrategy<'handshake'>;
