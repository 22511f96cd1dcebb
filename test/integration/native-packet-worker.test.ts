/**
 * Regression: terminating a worker thread whose native socket (PacketSocket, batched UdpSocket) is
 * receiving must not crash the process. Two bugs did: node-addon-api's wrappers turned the failed
 * callback into a fatal error, and the poll handle's close callback ran after Node had unloaded the
 * addon (SIGSEGV). The scenario runs in a child process, so a crash shows as its exit status instead
 * of killing vitest. Traffic: UDP datagrams to 127.0.0.1 only, bounded in count and time.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT, isRoot } from '../helpers/daemon.js';

const run = promisify(execFile);
const addonPath = join(ROOT, 'build/Release/jitsu_native.node');

const udpLoader = join(ROOT, 'dist/src/native/udp.js');

/** argv: [addon path, udp loader path, 'packet' | 'udp'] */
const scenario = `
const { Worker } = require('node:worker_threads');
const dgram = require('node:dgram');
const [addonPath, udpLoader, kind] = process.argv.slice(1);
const port = 20000 + (process.pid % 20000);
const workerCode = \`
  const { parentPort } = require('node:worker_threads');
  const busy = () => { const end = Date.now() + 2; while (Date.now() < end); };
  (async () => {
    if (\${JSON.stringify(kind)} === 'packet') {
      const addon = require(\${JSON.stringify(addonPath)});
      const data = Buffer.alloc(1 << 20), meta = new Uint32Array(4096 * 3);
      new addon.PacketSocket({ iface: 'lo', receive: true, data, meta, ring: { version: 2 }, onBatch: busy });
    } else {
      const { openBatchedUdp } = await import(\${JSON.stringify(udpLoader)});
      openBatchedUdp({ address: '127.0.0.1', port: \${port}, onBatch: busy });
    }
    parentPort.postMessage('ready');
  })();\`;
(async () => {
  const sock = dgram.createSocket('udp4');
  const payload = Buffer.alloc(200);
  let sending = true, sent = 0;
  const pump = () => { if (!sending || sent > 400000) return; for (let i = 0; i < 50; i++) { sock.send(payload, port, '127.0.0.1'); sent++; } setImmediate(pump); };
  pump();
  for (let round = 0; round < 12; round++) {
    const w = new Worker(workerCode, { eval: true });
    await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); });
    await new Promise((r) => setTimeout(r, 20 + round * 7));
    await w.terminate();
  }
  sending = false;
  sock.close();
  console.log('survived ' + sent);
})().catch((e) => { console.error(e); process.exit(3); });
`;

describe.skipIf(!isRoot() || !existsSync(addonPath) || !existsSync(udpLoader))('native sockets on a worker thread', () => {
  it.each(['packet', 'udp'])('%s socket: survives the worker being terminated while datagrams arrive (12 rounds)', async (kind) => {
    // 2 s here; minutes on the emulated ARM board with its cores shared (it was killed at 60 s there).
    const r = await run(process.execPath, ['-e', scenario, addonPath, udpLoader, kind], { timeout: 240_000 }).then(
      (ok) => ({ code: 0, out: ok.stdout, err: ok.stderr }),
      (e: { code: number; signal?: string; stdout: string; stderr: string }) => ({ code: e.code ?? e.signal, out: e.stdout, err: e.stderr }),
    );
    expect(r.err).not.toMatch(/FATAL ERROR/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^survived \d+/);
  }, 300_000);
});
