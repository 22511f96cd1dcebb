import type { MaskStrategy } from './strategy.js';

/**
 * Socket activation: the backend binds the listening sockets inside the service's namespace before
 * the program starts, so the service's own kernel queues SYNs and data while it starts.
 */
export const activate = {
  name: 'activate',
  summary: "the backend pre-binds the service's sockets (LISTEN_FDS); its kernel queues SYNs while it starts",
  requires: 'prebind',
  delaysAnswer: false,
  answersBeforeReady: false,
  onPacketPath: false,
  holdsConnections: false,
  answersArp: { watched: false, booting: false },
  linkUp: 'start',
  clientSegments: 'none',
  check: (options, service) => ((options['port'] ?? []).length > 0 ? undefined : `mask=activate needs the sockets to pass: add port=N to service ${service}`),
} as const satisfies MaskStrategy<'activate'>;
