import { BUILT_DEMO_SERVER, stageDemoServer } from '../demo/stage.js';
import type { RawConfig } from './validate.js';

/** The demo's service address: its own /24 on the daemon's bridge, the host at .1. */
export const DEMO_NAME = 'demo.jitsu.test';
export const DEMO_IP = '10.77.0.10';
export const DEMO_DNS_PORT = 5353;
export const DEMO_METRICS = '127.0.0.1:9153';

/**
 * The embedded default behind `jitsu --demo`: DNS on 127.0.0.1:5353, one socket-activated process
 * service (the built-in HTTP server) at demo.jitsu.test. Flags given with --demo override it.
 */
export function demoConfig(): RawConfig {
  // Run by the unprivileged service user: from a copy it can reach (root can write /run).
  let server = BUILT_DEMO_SERVER;
  try {
    server = stageDemoServer('/run/jitsu-demo');
  } catch {
    // not root: the daemon will say so; the service would run from the checkout
  }
  const exec = `${process.execPath} ${server} --port 80 --message "hello from demo.jitsu.test (summoned by Jitsu)"`;
  return {
    flags: new Map([
      ['bind', ['127.0.0.1']],
      ['port', [String(DEMO_DNS_PORT)]],
      ['state', ['/var/lib/jitsu/demo']],
      ['metrics', [DEMO_METRICS]],
      ['ttl', ['30']],
    ]),
    services: [
      [
        ['dns', DEMO_NAME],
        ['ip', DEMO_IP],
        ['port', '80'],
        ['exec', exec],
      ],
    ],
  };
}
